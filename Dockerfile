# The image of `inventory serve` and `inventory worker` (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY inventory ./inventory
COPY migrations ./migrations
# Editable: the migrations are read from /app/migrations beside the package.
RUN pip install --no-cache-dir -e .
RUN useradd --system inventory
USER inventory
ENTRYPOINT []
CMD ["inventory", "serve", "--host", "0.0.0.0"]
