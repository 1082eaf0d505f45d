FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DMARCDASH_DATA_DIR=/data
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# Static files collected into the image: WhiteNoise serves them from gunicorn, no separate web server.
RUN SECRET_KEY=collectstatic-only DMARCDASH_DATA_DIR=/tmp/build python manage.py collectstatic --noinput \
    && rm -rf /tmp/build
RUN useradd --system --home /app dmarcdash && mkdir -p /data && chown dmarcdash /data
USER dmarcdash
EXPOSE 8000 2424
CMD ["gunicorn", "dmarcdash.wsgi", "--bind", "0.0.0.0:8000", "--timeout", "60", "--access-logfile", "-"]
