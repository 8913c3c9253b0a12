# One image for the web server and the workers. On GPU hosts, install the CUDA build of torch by
# overriding TORCH_SPEC (e.g. --build-arg TORCH_SPEC="torch==2.13.0 --index-url <cuda index>").
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 FITBOARD_VAR_DIR=/var/lib/fitboard
WORKDIR /app
COPY requirements.txt constraints.txt ./
COPY packages/fitboard-model packages/fitboard-model
RUN pip install --no-cache-dir -c constraints.txt -r requirements.txt
COPY . .
RUN useradd --system --home /app fitboard && mkdir -p /var/lib/fitboard \
    && chown fitboard /var/lib/fitboard
USER fitboard
EXPOSE 8000
CMD ["python", "-m", "webapp.serve", "-b", "0.0.0.0", "-p", "8000", "webapp.asgi:application"]
