"""Private helpers: discovery, keys, tokens, flow state, outbound HTTP, crypto. Not public API."""
