// Play: a game against a served agent through POST /v1/games/{game}/move. The page keeps the position
// (the moves so far, 1-based digits, as the API takes it), draws the board from it, and checks the
// person's moves itself (legal move, win, draw) so that it never asks the agent to move in a finished game;
// the agent's own moves come back with game_over and winner from the server.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const GAMES = {
    tictactoe: {rows: 3, cols: 3, actions: 9, line: 3, marks: ["X", "O"], noun: "cell"},
    connect4: {rows: 6, cols: 7, actions: 7, line: 4, marks: ["red", "yellow"], noun: "column"},
  };
  let agents = null;
  let game = null;           // {name, spec, agent, moves: "", human: 0|1, over: false, thinking: false}

  async function loadAgents() {
    agents = (await App.json("/v1/games")).data.filter((a) => GAMES[a.game]);
    const select = $("play-agent");
    select.replaceChildren(...agents.map((a) => App.el("option", {value: a.id, text: `${a.id} (${a.game})`})));
    if (!agents.length) {
      select.append(App.el("option", {value: "", text: "(no game agent served)"}));
      $("play-new").disabled = true;
      return;
    }
    newGame();
  }

  // The grid after `moves`: grid[r][c] = 0, 1 (the player who played there) or null.
  function grid(spec, moves) {
    const cells = Array.from({length: spec.rows}, () => Array(spec.cols).fill(null));
    [...moves].forEach((digit, i) => {
      const move = Number(digit) - 1;
      if (spec.rows === 3) {
        cells[Math.floor(move / 3)][move % 3] = i % 2;
      } else {
        for (let r = spec.rows - 1; r >= 0; r--) {
          if (cells[r][move] === null) { cells[r][move] = i % 2; break; }
        }
      }
    });
    return cells;
  }

  function legal(spec, moves) {
    const cells = grid(spec, moves);
    const out = [];
    for (let a = 0; a < spec.actions; a++) {
      const free = spec.rows === 3 ? cells[Math.floor(a / 3)][a % 3] === null : cells[0][a] === null;
      if (free) out.push(a + 1);
    }
    return out;
  }

  // The winner (0 or 1), "draw", or null while the game goes on.
  function outcome(spec, moves) {
    const cells = grid(spec, moves);
    const directions = [[0, 1], [1, 0], [1, 1], [1, -1]];
    for (let r = 0; r < spec.rows; r++) {
      for (let c = 0; c < spec.cols; c++) {
        const who = cells[r][c];
        if (who === null) continue;
        for (const [dr, dc] of directions) {
          let k = 1;
          while (k < spec.line && cells[r + dr * k] && cells[r + dr * k][c + dc * k] === who) k++;
          if (k === spec.line) return who;
        }
      }
    }
    return legal(spec, moves).length ? null : "draw";
  }

  function draw() {
    const {spec, moves} = game;
    const cells = grid(spec, moves);
    const last = moves.length ? Number(moves[moves.length - 1]) : null;
    const board = $("play-board");
    board.className = `board ${game.name}`;
    board.style.gridTemplateColumns = `repeat(${spec.cols}, var(--cell))`;
    const children = [];
    for (let r = 0; r < spec.rows; r++) {
      for (let c = 0; c < spec.cols; c++) {
        const move = spec.rows === 3 ? r * 3 + c + 1 : c + 1;
        const who = cells[r][c];
        const cell = App.el("button", {class: "cell", type: "button", "data-move": move, "data-row": r,
          "data-col": c, "aria-label": `${spec.noun} ${move}`});
        if (who !== null) {
          cell.classList.add(`p${who}`);
          cell.textContent = spec.rows === 3 ? spec.marks[who] : "";
        }
        const top = cells.findIndex((row) => row[c] !== null);     // connect four: the column's newest piece
        if (move === last && (spec.rows === 3 || r === top)) cell.classList.add("last");
        cell.disabled = game.over || game.thinking || !legal(spec, moves).includes(move) ||
          moves.length % 2 !== game.human;
        cell.addEventListener("click", () => humanMove(move));
        children.push(cell);
      }
    }
    board.replaceChildren(...children);
  }

  function status(text, over) {
    $("play-status").textContent = text;
    $("play-status").dataset.over = over ? "1" : "0";
  }

  function finish(result) {
    game.over = true;
    const text = result === "draw" ? "Game over: a draw." :
      result === game.human ? "Game over: you win!" : "Game over: the agent wins.";
    status(text, true);
    draw();
  }

  function showAnalysis(answer) {
    const counts = answer.visits || answer.prior;
    const total = counts.reduce((a, b) => a + (b || 0), 0) || 1;
    const bars = counts.map((count, i) => {
      const share = (count || 0) / total;
      const bar = App.el("div", {class: "bar" + (i + 1 === answer.move ? " chosen" : ""), "data-move": i + 1,
        title: `${game.spec.noun} ${i + 1}: ${answer.visits ? `${count} visits, ` : ""}prior ${App.fmt(answer.prior[i])}` +
          (answer.q && answer.q[i] !== null ? `, Q ${App.fmt(answer.q[i])}` : "")},
      App.el("div", {class: "fill", style: `height:${Math.round(share * 100)}%`}),
      App.el("span", {class: "pct", text: `${Math.round(share * 100)}%`}),
      App.el("span", {class: "label", text: String(i + 1)}));
      return bar;
    });
    $("play-bars").replaceChildren(...bars);
    const value = answer.value;
    $("play-value").replaceChildren(
      App.el("span", {text: `value ${value >= 0 ? "+" : ""}${value.toFixed(3)} `}),
      App.el("span", {class: "meter"}, App.el("span", {class: "needle", style: `left:${(value + 1) * 50}%`})),
      App.el("span", {class: "hint", text: answer.visits ? ` after ${answer.simulations} simulations` : " (raw net)"}));
    if (game.name === "tictactoe") {    // the visit shares on the board's cells too
      for (const cell of $("play-board").querySelectorAll(".cell")) {
        const i = Number(cell.dataset.move) - 1;
        if (!cell.textContent && counts[i]) cell.append(App.el("small", {text: `${Math.round(counts[i] / total * 100)}%`}));
      }
    }
  }

  async function agentMove() {
    game.thinking = true;
    status("The agent is thinking…", false);
    draw();
    const current = game;
    try {
      const answer = await App.json(`/v1/games/${game.name}/move`, {
        model: game.agent, position: game.moves,
        simulations: Math.max(0, Math.round(Number($("play-simulations").value) || 0)),
        seed: game.moves.length,
      });
      if (current !== game) return;           // a new game started meanwhile
      game.moves = answer.position_after;
      game.thinking = false;
      draw();
      showAnalysis(answer);
      if (answer.game_over) finish(answer.winner === null ? "draw" : answer.winner);
      else {
        status(`The agent played ${game.spec.noun} ${answer.move}. Your move (${game.spec.marks[game.human]}).`, false);
      }
    } catch (error) {
      if (current !== game) return;
      game.thinking = false;
      App.error("play-error", error.message);
      status("The agent could not move; start a new game.", false);
      draw();
    }
  }

  function humanMove(move) {
    if (game.over || game.thinking || game.moves.length % 2 !== game.human) return;
    if (!legal(game.spec, game.moves).includes(move)) return;
    game.moves += String(move);
    const result = outcome(game.spec, game.moves);
    if (result !== null) {
      finish(result);
      return;
    }
    agentMove();
  }

  function newGame() {
    App.error("play-error", "");
    const agent = agents.find((a) => a.id === $("play-agent").value) || agents[0];
    game = {name: agent.game, spec: GAMES[agent.game], agent: agent.id, moves: "",
      human: Number($("play-side").value), over: false, thinking: false};
    $("play-bars").replaceChildren();
    $("play-value").replaceChildren();
    draw();
    if (game.human === 1) agentMove();
    else status(`You play ${game.spec.marks[0]}, first: your move.`, false);
  }

  $("play-new").addEventListener("click", newGame);
  $("play-agent").addEventListener("change", newGame);
  $("play-side").addEventListener("change", newGame);

  App.page("play", {
    show() {
      if (agents === null) loadAgents().catch((error) => App.error("play-error", error.message));
    },
  });
})();
