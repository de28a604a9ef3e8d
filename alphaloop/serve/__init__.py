"""`alphaloop serve`: trained policies behind OpenAI's API, game agents behind a move endpoint.

One module per job: `models` (arguments -> loaded models and their ids), `chat` (the chat template
per env), `schemas` (request bodies), `errors` (OpenAI's error shape), `stepwise` decoding lives in
`policies.stepwise`, `sampling` (per-row token choice), `rows` (one choice's text and stop strings),
`engine` (the batching decode loop), `jobs` (HTTP request <-> engine), `openai_api` and `games` (the
endpoints), `app` (the FastAPI app and uvicorn). docs/serving.md is the user's guide.
"""
