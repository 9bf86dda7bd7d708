# One image for every service of docker-compose.yml: the APIs, the Celery workers, the beat, `migrator init`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY es_app ./es_app
COPY legacy_app ./legacy_app
COPY migrator ./migrator
RUN pip install '.[postgres]' && useradd --create-home app
USER app

EXPOSE 8000 8001
CMD ["migrator", "serve", "es", "--host", "0.0.0.0", "--port", "8000"]
