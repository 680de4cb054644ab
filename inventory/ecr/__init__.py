"""The ECR-compatible endpoint: ``/ecr`` speaks ECR's own JSON 1.1 protocol, so the unmodified AWS CLI
and boto3 read the inventory across every account, with an inventory token as their AWS access key.

- ``keys``: access keys (``inventory tokens create --aws``): the id stored, the secret derived from the
  server's ``INVENTORY_SECRET_KEY``, never stored;
- ``sigv4``: requests verified as AWS verifies them (botocore's signer recomputes the signature);
- ``operations``: DescribeImages, DescribeRepositories, ListImages (private) and DescribeImages,
  DescribeRepositories (ECR Public), answered by the read layer (``inventory.read``) in ECR's shapes;
- ``endpoint``: the ASGI app: targets, errors as ECR sends them, limits, the audit line.
"""
