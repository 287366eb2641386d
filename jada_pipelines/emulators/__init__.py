"""Local stand-ins for Google, Anthropic and Slack on 127.0.0.1, for tests and `make demo`. Not the real services."""
