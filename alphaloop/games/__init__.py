"""Two-player, zero-sum, perfect-information board games behind one OpenSpiel-like state API."""
