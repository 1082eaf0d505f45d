FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DMARCDASH_DATA_DIR=/data
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN useradd --system --home /app dmarcdash && mkdir -p /data && chown dmarcdash /data
USER dmarcdash
EXPOSE 8000
CMD ["gunicorn", "dmarcdash.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
