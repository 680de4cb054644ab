"""The AWS side: clients, assumed roles, paging."""
