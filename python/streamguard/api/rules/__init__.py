"""Rules: read and replace the engine's rule set (If-Match on its KV revision), and backtest a
set over stored events before saving it."""
