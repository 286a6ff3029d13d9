"""modelyard desktop agent: pull model versions into a verified, content-addressed cache."""
