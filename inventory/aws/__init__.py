"""The AWS side: clients, assumed roles, paging, ECR's events, and what each account needs (``setup``)."""
