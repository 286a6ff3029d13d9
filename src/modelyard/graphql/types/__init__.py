"""GraphQL object types: thin views over catalog rows."""
