"""The GraphQL API: thin resolvers over `modelyard.catalog`."""
