"""The catalog's rules: names, refs, versions, aliases, lineage, datasets and search.

Everything here is plain async Python over `modelyard.db`; GraphQL, HTTP and the CLI call it and
never re-implement a rule.
"""
