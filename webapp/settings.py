"""Fitboard settings: everything from environment variables, with embedded defaults that run on
one machine (SQLite under var/, the bundled Redis started by ``manage.py up``)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
import plotly
from django.core.exceptions import ImproperlyConfigured

from training.data.uploads import Limits
from training.spec import bundled_model_dir
from webapp import hardware
from webapp.env import (
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_path,
    env_redis_url,
    env_str,
    secret_key,
)

# "production" turns on every HTTPS and cookie protection that `manage.py check --deploy` asks
# for and refuses to start without an explicit SECRET_KEY and ALLOWED_HOSTS; "development" (the
# default, what `make run` uses) serves plain HTTP on loopback.
FITBOARD_ENV = env_choice("FITBOARD_ENV", "development", ("development", "production"))
PRODUCTION = FITBOARD_ENV == "production"

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = env_path("FITBOARD_VAR_DIR", BASE_DIR / "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)
(VAR_DIR / "static").mkdir(exist_ok=True)

SECRET_KEY = secret_key(VAR_DIR, required=PRODUCTION)
DEBUG = env_bool("DJANGO_DEBUG", False)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DJANGO_DEBUG must be off when FITBOARD_ENV=production")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
if PRODUCTION and not os.environ.get("ALLOWED_HOSTS", "").strip():
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when FITBOARD_ENV=production")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "webapp.projects",
    "webapp.experiments",
    "webapp.datasets",
    "webapp.tracking",
    "webapp.rest",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "webapp.notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "webapp.ratelimit.PageRateMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its refusal.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "webapp.urls"
ASGI_APPLICATION = "webapp.asgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'fitboard.sqlite3'}")
# A connection is closed when the request or task that opened it ends, except on the threads
# the web server keeps for requests (webapp.asgi.RequestThreads), which keep theirs for a while;
# one found unusable at a request's start is opened again.
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0,
                                              conn_health_checks=True)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while the worker writes; IMMEDIATE avoids upgrade deadlocks.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # Tests on a file, not Django's default shared-cache in-memory database: there, a write
    # that meets another thread's (a worker's reporter flushes from its own thread) fails at
    # once with "database table is locked" instead of waiting out the timeout above.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-fitboard.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Login rate limiting (django-axes): after FITBOARD_LOGIN_FAILURES failed logins for one
# username from one address, that pair is refused (HTTP 429), even with the right password,
# until FITBOARD_LOGIN_COOLOFF_S seconds have passed without another try. Keyed on the pair so
# one attacker cannot lock a user out from everywhere, nor lock out everyone behind one NAT.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("FITBOARD_LOGIN_FAILURES", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(seconds=env_int("FITBOARD_LOGIN_COOLOFF_S", 900, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "experiment-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
# plotly.min.js ships inside the plotly wheel: serve it from there, no CDN.
STATICFILES_DIRS = [BASE_DIR / "static", ("plotly", Path(plotly.__file__).parent / "package_data")]
WHITENOISE_USE_FINDERS = True
# Files served at the site's root before any login: /favicon.ico, which browsers ask for on
# every page whatever the page's <link rel="icon"> says.
WHITENOISE_ROOT = BASE_DIR / "webapp" / "root"
MEDIA_ROOT = env_path("MEDIA_ROOT", VAR_DIR / "media")
# Checkpoints and uploads: on this machine's disk under MEDIA_ROOT, or in an S3-compatible bucket
# (django-storages) when FITBOARD_S3_BUCKET is set, so that workers on other machines and the
# web server share them. Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY;
# AWS_S3_ENDPOINT_URL points at a non-AWS store (MinIO, Ceph, ...). Workers still write each
# checkpoint under MEDIA_ROOT first, then upload it.
FITBOARD_S3_BUCKET = env_str("FITBOARD_S3_BUCKET", "")
STORAGES = {
    "default": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": FITBOARD_S3_BUCKET,
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL", "") or None,
            "region_name": env_str("AWS_S3_REGION_NAME", "") or None,
            "location": env_str("FITBOARD_S3_PREFIX", ""),
            "file_overwrite": True,  # a checkpoint's name is its run's; a new write replaces it
            "default_acl": None,  # the bucket's own policy: private unless made otherwise
        },
    } if FITBOARD_S3_BUCKET else {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Uploads too large to hold in memory are spooled here, inside the media folder (nowhere else).
FILE_UPLOAD_TEMP_DIR = MEDIA_ROOT / "upload-tmp"
FILE_UPLOAD_TEMP_DIR.mkdir(parents=True, exist_ok=True)
FILE_UPLOAD_HANDLERS = [
    "webapp.datasets.uploads.SizeLimitHandler",  # stops a file at FITBOARD_UPLOAD_MAX_MB
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", PRODUCTION)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# HTTPS in production: redirect plain HTTP and tell browsers to stay on HTTPS (HSTS). Behind a
# TLS-terminating proxy, FITBOARD_PROXY_SSL_HEADER names the header it sets (e.g.
# X-Forwarded-Proto): only trust it when the proxy overwrites that header on every request.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", PRODUCTION)
_proxy_header = env_str("FITBOARD_PROXY_SSL_HEADER", "")
if _proxy_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_header.upper().replace("-", "_"), "https")
# Proxies in front of the web server, each adding the address it received a request from to
# X-Forwarded-For: the login lockout keys failures by username and the client's address, the
# entry that many from the header's right end (``ratelimit.client_address``). Behind a proxy
# every connection is the proxy's own, and five wrong passwords from anyone locked a user out
# for everyone. One by default when FITBOARD_PROXY_SSL_HEADER says there is a proxy.
FITBOARD_TRUSTED_PROXIES = env_int("FITBOARD_TRUSTED_PROXIES", 1 if _proxy_header else 0,
                                   minimum=0)
AXES_CLIENT_IP_CALLABLE = "webapp.ratelimit.client_address"

# Redis carries the Celery queue and the Channels layer. redis-py 8 defaults to a 5 s socket
# timeout that would close idle WebSocket consumers, hence socket_timeout=None.
REDIS_URL = env_redis_url("REDIS_URL", "redis://127.0.0.1:6379/0")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
            "prefix": env_str("FITBOARD_CHANNEL_PREFIX", "fitboard"),
            "capacity": 1000,
            "expiry": 60,
        },
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"experiments.train": {"queue": "gpu"}, "experiments.trial": {"queue": "gpu"},
                      "experiments.repeat": {"queue": "gpu"},
                      "experiments.compress": {"queue": "gpu"}}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# With acks_late, Redis hands a message that a worker took but has not acknowledged to another
# worker after this many seconds: a training longer than that is delivered twice. That is safe:
# the second delivery finds the job running under a live lease (Experiment.start is a
# conditional UPDATE on "queued") and returns at once, acknowledging its copy. It is also what
# brings back, in the end, a message taken by a worker that died before starting the job; the
# housekeeper (webapp.experiments.housekeeping) re-queues such jobs much sooner.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("FITBOARD_BROKER_VISIBILITY_TIMEOUT_S", 3600, minimum=60),
    # Prepended to every broker key (queues, unacked messages, control mailboxes), so that two
    # sites, or two test sessions, share one Redis without taking each other's tasks.
    "global_keyprefix": env_str("FITBOARD_BROKER_PREFIX", ""),
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Training on the worker: "auto" picks CUDA when present; threads default to every core.
FITBOARD_DEVICE = env_choice("FITBOARD_DEVICE", "auto", ("auto", "cpu", "cuda"))
FITBOARD_TORCH_THREADS = env_int("FITBOARD_TORCH_THREADS", os.cpu_count() or 1, minimum=1)
# Workers ``manage.py up`` starts (its --workers overrides it): by default as many as the cores
# and memory hold, so queued jobs do not wait behind one long run.
FITBOARD_UP_WORKERS = env_int(
    "FITBOARD_UP_WORKERS",
    hardware.default_workers(os.cpu_count() or 1, hardware.memory_bytes()), minimum=1)
# Memory one worker process may allocate (its heap: tensors and arrays on the CPU), GB: an
# allocation past it fails the job with that reason instead of the OOM killer ending the worker.
# ``manage.py up`` and ``manage.py worker`` give each of their workers an equal share of 90 % of
# the machine's memory; a worker started otherwise takes all of that; 0 = no limit.
FITBOARD_WORKER_MEMORY_GB = env_int(
    "FITBOARD_WORKER_MEMORY_GB", hardware.worker_memory_gb(1, hardware.memory_bytes()),
    minimum=0)
# Seconds between samples of the worker's CPU, RAM and GPU use, stored beside a running job's
# curves (sys/* keys); 0 turns the sampling off.
FITBOARD_SYSTEM_METRICS_INTERVAL = env_int("FITBOARD_SYSTEM_METRICS_S", 5, minimum=0)
# Live updates: at most one message per run per interval, each carrying every new point.
FITBOARD_LIVE_INTERVAL = env_int("FITBOARD_LIVE_INTERVAL_MS", 100, minimum=10) / 1000
# Checkpoints (best and last) are written at most this often while training, and at the end.
FITBOARD_CHECKPOINT_INTERVAL = env_int("FITBOARD_CHECKPOINT_INTERVAL_S", 30, minimum=0)
# A step that runs out of device memory is retried with passes of half the rows, down to this.
FITBOARD_MIN_BATCH = env_int("FITBOARD_MIN_BATCH", 8, minimum=2)
# The most seeds one repeat ("Repeat over N seeds", a verified remedy's side) may train.
FITBOARD_MAX_REPEATS = env_int("FITBOARD_MAX_REPEATS", 10, minimum=2)

# Leases on running jobs (see Experiment): a worker renews its lease every quarter of the
# timeout; a job whose worker has not renewed it for FITBOARD_LEASE_TIMEOUT_S seconds is taken
# back and queued to resume from its last saved state, at most FITBOARD_MAX_RESTARTS times
# (then it fails with the reason). Every worker runs the housekeeping that does this every
# FITBOARD_HOUSEKEEPING_INTERVAL_MS; it also sends again the message of a job queued for more
# than FITBOARD_REQUEUE_GRACE_S seconds when the broker no longer holds it (a Redis restart).
FITBOARD_LEASE_TIMEOUT = env_int("FITBOARD_LEASE_TIMEOUT_S", 30, minimum=1)
FITBOARD_MAX_RESTARTS = env_int("FITBOARD_MAX_RESTARTS", 3, minimum=0)
FITBOARD_HOUSEKEEPING_INTERVAL = env_int("FITBOARD_HOUSEKEEPING_INTERVAL_MS", 5000,
                                         minimum=10) / 1000
FITBOARD_REQUEUE_GRACE = env_int("FITBOARD_REQUEUE_GRACE_S", 30, minimum=1)

# Resource limits, so that no member can take a worker for days. A run whose estimated memory
# (weights, gradients, optimizer state and one batch's activations) is over
# FITBOARD_MAX_MODEL_MEMORY_GB, or that asks for more than FITBOARD_MAX_DEVICES data-parallel
# processes, is refused on its form. Defaults: the largest GPU's memory and the GPU count that
# NVML sees here (what `manage.py up` gives its workers), else 64 GB and one gloo process per
# core; set both when the workers run on other machines. A job running longer than
# FITBOARD_JOB_TIME_LIMIT_S (counted from its first start, across resumes) is stopped and fails
# with the reason, keeping its last checkpoint; 0 = no limit. The default, a day, is several
# times the longest built-in recipe on a CPU, yet bounds how long others wait for the worker.
# A user may have at most FITBOARD_MAX_ACTIVE_JOBS_PER_USER trainings, studies and
# compressions queued or running at once (0 = no limit).
_gpu_memory = hardware.gpu_memory()
FITBOARD_MAX_MODEL_MEMORY_GB = env_int("FITBOARD_MAX_MODEL_MEMORY_GB",
                                       max(_gpu_memory, default=0) // 10**9 or 64, minimum=1)
FITBOARD_MAX_DEVICES = env_int("FITBOARD_MAX_DEVICES", len(_gpu_memory) or os.cpu_count() or 1,
                               minimum=1)
FITBOARD_JOB_TIME_LIMIT = env_int("FITBOARD_JOB_TIME_LIMIT_S", 24 * 3600, minimum=0)
FITBOARD_MAX_ACTIVE_JOBS_PER_USER = env_int("FITBOARD_MAX_ACTIVE_JOBS_PER_USER", 10, minimum=0)
# Live pages' WebSockets one user may hold open at once, over every tab and web process (each
# holds channel-layer group subscriptions in Redis); 0 = no limit. A compare page of 20 runs
# opens 21, so the default leaves room for several of them beside run pages.
FITBOARD_MAX_SOCKETS_PER_USER = env_int("FITBOARD_MAX_SOCKETS_PER_USER", 100, minimum=0)
# Requests one logged-in user's sessions may make in a minute, pages and their JSON alike (429
# with Retry-After past it), and WebSockets they may open in a minute (closed with 4429 past
# it; a page's reconnecting loop or a script cannot make the server subscribe and authorise
# without end); 0 = no limit. A person clicking through pages makes a few dozen.
FITBOARD_PAGE_RATE_PER_MIN = env_int("FITBOARD_PAGE_RATE_PER_MIN", 1200, minimum=0)
FITBOARD_SOCKET_RATE_PER_MIN = env_int("FITBOARD_SOCKET_RATE_PER_MIN", 300, minimum=0)
# Bytes one user may keep in storage (webapp.projects.storage): their data sets, their scripts'
# artifacts and logged models, their runs' checkpoints and metric points; an upload or a
# script's points past it are refused, and so is a launch once they are at it; 0 = no limit.
FITBOARD_STORAGE_QUOTA_BYTES = env_int("FITBOARD_STORAGE_QUOTA_GB", 20, minimum=0) * 2**30
# Bytes each file a script uploads (an artifact, a logged model's file) counts for in that
# quota at least: a file takes an inode and a row however small it is, and ext4 gives a disk
# one inode per 16 KiB by default, so empty files counted as nothing could use up every inode
# of the disk (and rows of the database) within any quota. 0 = files count as their bytes.
FITBOARD_STORAGE_BYTES_PER_FILE = env_int("FITBOARD_STORAGE_BYTES_PER_FILE", 16 * 1024,
                                          minimum=0)

# Data: MNIST / Fashion-MNIST files live in the data directory (downloaded there with checksums
# when missing, unless downloads are off); uploads are limited in size, rows and unpacked bytes.
FITBOARD_DATA_DIR = env_path("FITBOARD_DATA_DIR", VAR_DIR / "data")
FITBOARD_DATA_DOWNLOAD = env_bool("FITBOARD_DATA_DOWNLOAD", True)
# Each data set split's reference model (training.reference: what a linear model reaches, the
# bar underfitting is judged against), computed once into this folder by the first run on it.
FITBOARD_REFERENCE_DIR = env_path("FITBOARD_REFERENCE_DIR", VAR_DIR / "references")
FITBOARD_UPLOAD_MAX_BYTES = env_int("FITBOARD_UPLOAD_MAX_MB", 100, minimum=1) * 2**20
# The largest checkpoint archive the web process loads for "Try it" and the ONNX export.
FITBOARD_SERVE_MAX_BYTES = env_int("FITBOARD_SERVE_MAX_MB", 500, minimum=1) * 2**20
# The largest request body the web server (webapp.serve) reads at all, refused with 413 while it
# is received: by default an upload at the limit and 10 MB for its form, so that a file a little
# past the limit still gets the form's own message.
FITBOARD_MAX_REQUEST_BYTES = env_int("FITBOARD_MAX_REQUEST_MB",
                                     FITBOARD_UPLOAD_MAX_BYTES // 2**20 + 10, minimum=1) * 2**20
# The bytes of request bodies one web server process holds at once (each on its disk until
# its request ends): past them, a body of more than 64 kB is refused with 503 while it is
# received. Each body was bounded alone, so a hundred anonymous uploads sent at once, none
# authenticated before its whole body was in, put 11 GB in the temporary folder.
FITBOARD_MAX_REQUEST_BODIES_BYTES = env_int("FITBOARD_MAX_REQUEST_BODIES_MB",
                                            8 * (FITBOARD_MAX_REQUEST_BYTES // 2**20),
                                            minimum=1) * 2**20
FITBOARD_UPLOAD_MAX_ROWS = env_int("FITBOARD_UPLOAD_MAX_ROWS", 1_000_000, minimum=1)
FITBOARD_UPLOAD_MAX_UNPACKED_BYTES = env_int("FITBOARD_UPLOAD_MAX_UNPACKED_MB", 1024,
                                             minimum=1) * 2**20
# Work an upload may cost the web request, checked before anything is parsed or decoded (the
# defaults in training.data.uploads.Limits say why each is what it is): entries in a ZIP,
# pixels decoded from one ZIP (each image counted at least image_size²), CSV columns, CSV cells
# (columns × lines) and characters in one CSV cell.
_LIMITS = Limits()
FITBOARD_UPLOAD_MAX_MEMBERS = env_int("FITBOARD_UPLOAD_MAX_MEMBERS", _LIMITS.max_members,
                                      minimum=1)
FITBOARD_UPLOAD_MAX_PIXELS = env_int("FITBOARD_UPLOAD_MAX_PIXELS", _LIMITS.max_pixels, minimum=1)
FITBOARD_UPLOAD_MAX_COLUMNS = env_int("FITBOARD_UPLOAD_MAX_COLUMNS", _LIMITS.max_columns,
                                      minimum=2)
FITBOARD_UPLOAD_MAX_CELLS = env_int("FITBOARD_UPLOAD_MAX_CELLS", _LIMITS.max_cells, minimum=1)
FITBOARD_UPLOAD_MAX_CELL_CHARS = env_int("FITBOARD_UPLOAD_MAX_CELL_CHARS",
                                         _LIMITS.max_cell_chars, minimum=1)
# Folders a Hugging Face dataset may be read from by local path (default: the data directory).
FITBOARD_DATASETS_LOCAL_DIRS = [
    Path(p).expanduser().resolve()
    for p in env_list("FITBOARD_DATASETS_LOCAL_DIRS", [str(FITBOARD_DATA_DIR)])
]
# Folders a pretrained text model (model.pretrained) may be loaded from by path; hub names are
# not affected. Default: the data directory and the bundled MiniLM's folder.
FITBOARD_MODELS_LOCAL_DIRS = [
    Path(p).expanduser().resolve()
    for p in env_list("FITBOARD_MODELS_LOCAL_DIRS", [
        str(FITBOARD_DATA_DIR), *([str(bundled_model_dir())] if bundled_model_dir() else [])])
]
# Optuna studies live in its RDB storage, reachable by every worker. RDB rather than the Redis
# journal: only RDB storage keeps trial heartbeats, which is how a killed worker's trial is failed
# and retried. On PostgreSQL it is the project's database (Optuna's own tables beside Django's);
# on SQLite a file of its own, so Optuna's writes never wait on Django's write lock.
OPTUNA_STORAGE_URL = env_str("FITBOARD_OPTUNA_STORAGE", (
    "postgresql+psycopg://" + DATABASE_URL.split("://", 1)[1]
    if DATABASE_URL.startswith(("postgres://", "postgresql://"))
    else f"sqlite:///{VAR_DIR / 'optuna.sqlite3'}"
))
# Seconds between a running trial's heartbeats; after two missed, its worker counts as dead and
# the trial is failed and retried with the same parameters.
FITBOARD_TRIAL_HEARTBEAT = env_int("FITBOARD_TRIAL_HEARTBEAT_S", 10, minimum=1)
# Seconds between a running study's looks for such trials (its task re-queued with a countdown
# on the default queue, which trial-only workers do not consume).
FITBOARD_STUDY_WATCHDOG = env_int("FITBOARD_STUDY_WATCHDOG_S", 30, minimum=1)

# The tracking API (webapp.tracking), for runs trained elsewhere: each API token may make at
# most FITBOARD_API_RATE_PER_MIN requests a minute (then 429 until the minute is over; the
# mlflow client waits and retries); a running external run whose client beats (the native
# client, the mlflow client's fitboard+http store) and that sends nothing for
# FITBOARD_EXTERNAL_HEARTBEAT_S seconds is marked failed (its script died or lost the network);
# one logged over MLflow's REST API, which has no heartbeat, after FITBOARD_EXTERNAL_SILENCE_S
# (a script that logs once an epoch may be quiet for an hour).
FITBOARD_API_RATE_PER_MIN = env_int("FITBOARD_API_RATE_PER_MIN", 6000, minimum=1)
FITBOARD_EXTERNAL_HEARTBEAT = env_int("FITBOARD_EXTERNAL_HEARTBEAT_S", 300, minimum=1)
FITBOARD_EXTERNAL_SILENCE = env_int("FITBOARD_EXTERNAL_SILENCE_S", 86400, minimum=1)
# Runs one user's scripts may create in an hour through the tracking APIs (0 = no limit): a
# search with a filter reads every run of its projects, so a member's loop of runs/create made
# every teammate's search slower by the second (2.6 s at 20,000 runs).
FITBOARD_MAX_EXTERNAL_RUNS_PER_HOUR = env_int("FITBOARD_MAX_EXTERNAL_RUNS_PER_HOUR", 1000,
                                              minimum=0)
# Metric points one external run holds (0 = no limit). Its page's verdict, its end and
# MLflow's get-history read a run's points whole (50 to 200 bytes of memory a point): a
# member's run of 100 million points (2.4 GB, within the storage quota) made every view of
# its page hold 5 GB, and a get-history of it 17 GB, enough to take the server down.
FITBOARD_MAX_POINTS_PER_RUN = env_int("FITBOARD_MAX_POINTS_PER_RUN", 10_000_000, minimum=0)
# Projects one user may create in an hour, on the pages and through the APIs (0 = no limit):
# names are shared by every team, and each project of a user is a group their run list's
# socket joins in the channel layer, so a loop of create_experiment took names by the thousand
# and made every socket its user opened thousands of Redis commands.
FITBOARD_MAX_PROJECTS_PER_HOUR = env_int("FITBOARD_MAX_PROJECTS_PER_HOUR", 100, minimum=0)

# The REST API (webapp.rest, /api/v1/): an API token or the browser's session (whose writes
# need the CSRF token, as the pages'), JSON only, errors in one shape (webapp.rest.errors).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["webapp.rest.auth.TokenAuthentication",
                                       "rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["webapp.rest.auth.TokenScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["webapp.rest.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "webapp.rest.errors.handle",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Fitboard REST API",
    "DESCRIPTION": "Runs, their metrics, launching, cancelling, tuning and compressing: what "
                   "the pages do. Authenticate with an API token (Authorization: Bearer "
                   "fb_…, made on the API tokens page) or the browser's session.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and docs need a token or a login too: nothing of the site is public.
    "SERVE_PERMISSIONS": ["webapp.rest.auth.TokenScope"],
    "SCHEMA_PATH_PREFIX": "/api/v1/",
    # The API's PATCH (a member's role) validates its whole body, as DRF's generic views'
    # partial updates do not: its schema keeps the required fields.
    "COMPONENT_SPLIT_PATCH": False,
    # Swagger UI and its assets from drf-spectacular-sidecar's static files: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"RunStatusEnum": "webapp.experiments.models.Experiment.Status",
                            "RunKindEnum": "webapp.experiments.models.Experiment.Kind",
                            "DatasetKindEnum": "webapp.datasets.models.Dataset.Kind",
                            "LabelScanStatusEnum":
                                "webapp.datasets.models.LabelScan.Status"},
}

# Notifications (webapp.notifications): e-mail through Django's mail backend (the console by
# default: messages go to the log until EMAIL_BACKEND names SMTP), links in them and in webhook
# payloads start with FITBOARD_SITE_URL, the address users open the site at.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL cannot both be on")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT_S", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "fitboard@localhost")
FITBOARD_SITE_URL = env_str("FITBOARD_SITE_URL", "http://127.0.0.1:8000").rstrip("/")
if not FITBOARD_SITE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured("FITBOARD_SITE_URL must start with http:// or https://")
# Outbound webhooks and e-mail: each delivery is a Celery task on FITBOARD_NOTIFY_QUEUE, which
# `manage.py up` and `manage.py worker` give a worker of its own with FITBOARD_NOTIFY_THREADS
# threads (launch.notify_plan): a slow receiver holds one of those threads, never a training
# worker, and deliveries never wait behind a training. A training queue here ("default") makes
# the training workers deliver instead, one job at a time, as before. An attempt that fails (no
# 2xx within FITBOARD_WEBHOOK_TIMEOUT_S) is tried again up to FITBOARD_WEBHOOK_RETRIES times,
# FITBOARD_WEBHOOK_BACKOFF_S seconds after the first failure, then twice as long each time.
# Targets on private, loopback, link-local or otherwise non-public addresses are refused (a
# member must not make the server call its own network or a cloud metadata service) unless
# FITBOARD_WEBHOOK_ALLOW_PRIVATE is on, for receivers on the same network.
FITBOARD_NOTIFY_QUEUE = env_str("FITBOARD_NOTIFY_QUEUE", "notify")
FITBOARD_NOTIFY_THREADS = env_int("FITBOARD_NOTIFY_THREADS", 8, minimum=1)
FITBOARD_WEBHOOK_RETRIES = env_int("FITBOARD_WEBHOOK_RETRIES", 5, minimum=0)
FITBOARD_WEBHOOK_TIMEOUT = env_int("FITBOARD_WEBHOOK_TIMEOUT_S", 10, minimum=1)
FITBOARD_WEBHOOK_BACKOFF: float = env_int("FITBOARD_WEBHOOK_BACKOFF_S", 30, minimum=0)
FITBOARD_WEBHOOK_ALLOW_PRIVATE = env_bool("FITBOARD_WEBHOOK_ALLOW_PRIVATE", False)
# What one member can make the notifications send: webhooks per project (each event is a
# delivery task per webhook, retried), and notifications per hour caused by one user's runs
# (a script can end a run, or resume and end it again, many times a second); 0 = no limit.
FITBOARD_MAX_WEBHOOKS_PER_PROJECT = env_int("FITBOARD_MAX_WEBHOOKS_PER_PROJECT", 10, minimum=0)
FITBOARD_NOTIFY_MAX_PER_HOUR = env_int("FITBOARD_NOTIFY_MAX_PER_HOUR", 60, minimum=0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # axes logs every login at INFO; its AccessLog and AccessAttempt tables keep that record.
    "loggers": {"daphne": {"level": "WARNING"}, "django.channels.server": {"level": "WARNING"},
                "axes": {"level": "WARNING"}},
}

# Content-Security-Policy on every response (django-csp): scripts only from our own files (the
# pages pass data as json_script, never inline code), so an injected <script> or handler does
# not run. style-src allows 'unsafe-inline' because Plotly writes inline style attributes and a
# <style> element as it draws (without it Chromium refuses them and the charts lose their
# layout); a style cannot run code. connect-src 'self' covers the page's own ws:/wss: origin in
# Chromium (CSP level 3). img-src data: and blob: are Plotly's "download as PNG". The study
# page alone adds 'unsafe-eval' (tuning_views.study_detail): its parallel-coordinates chart
# draws with WebGL through regl, which compiles its shaders' glue with Function().
MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
                  "csp.middleware.CSPMiddleware")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}
