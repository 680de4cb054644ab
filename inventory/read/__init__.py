"""The inventory's reads: the SQL of search (images and repositories by filter, order and keyset), of the
inventory at a past time (``past``), and their counts, as statements over the tables, scoped by the
registries a reader may see (``scope`` in each filter). It knows nothing of GraphQL: the API's resolvers
(``inventory.api``) run these statements and turn their rows into types.
"""
