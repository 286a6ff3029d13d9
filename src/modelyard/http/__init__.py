"""HTTP adapters beside GraphQL: thin routes over the catalog and storage."""
