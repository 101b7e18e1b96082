"""File contents of the four sample applications, commit by commit.

`my-application` is the demo's broken release: its head commit makes server.js load
config/production.json, but neither the repository nor the Dockerfile provides that file, so
builds, tests and scans pass while the deployed pods crash-loop. Its first release did not
need the file, which is what a rollback brings back.
"""

from __future__ import annotations

import json
from typing import Any

from opsmith.sandbox.samples.model import SampleApp, SampleCommit


def _package(name: str, version: str, description: str, deps: dict[str, str], dev: dict[str, str]) -> str:
    doc: dict[str, Any] = {
        "name": name,
        "version": version,
        "description": description,
        "main": "server.js",
        "private": True,
        "scripts": {"start": "node server.js", "test": "opsmith-test tests/"},
        "dependencies": deps,
        "devDependencies": dev,
    }
    return json.dumps(doc, indent=2) + "\n"


def _tests(suite: str, cases: list[tuple[str, list[dict[str, Any]]]]) -> str:
    doc = {"suite": suite, "cases": [{"name": name, "expect": expect} for name, expect in cases]}
    return json.dumps(doc, indent=2) + "\n"


def _dockerfile(copies: list[str], port: int, cmd: str = '["npm", "start"]') -> str:
    lines = [
        "FROM node:18-alpine",
        "WORKDIR /app",
        "ENV NODE_ENV=production",
        "COPY package*.json ./",
        "RUN npm ci --omit=dev",
        *copies,
        f"EXPOSE {port}",
        f"CMD {cmd}",
    ]
    return "\n".join(lines) + "\n"


DOCKERIGNORE = "node_modules\ntests/\n*.md\n.git\n"

# --- my-application -------------------------------------------------------------------------

_MY_APP_JS = """'use strict';

const express = require('express');
const helmet = require('helmet');
const routes = require('./routes');
const health = require('./health');
const logger = require('./logger');

function createApp(settings) {
  const app = express();
  app.use(helmet());
  app.use(express.json());
  app.use(logger.requests(settings.environment));
  app.get('/healthz', health.handler(settings));
  app.use('/api', routes);
  return app;
}

module.exports = createApp;
"""

_MY_ROUTES_JS = """'use strict';

const express = require('express');

const router = express.Router();

router.get('/status', (req, res) => {
  res.json({ status: 'ok', service: 'my-application' });
});

router.get('/greeting/:name', (req, res) => {
  const name = String(req.params.name).slice(0, 64);
  res.json({ message: `Hello, ${name}!` });
});

module.exports = router;
"""

_MY_HEALTH_JS = """'use strict';

function handler(settings) {
  const startedAt = new Date().toISOString();
  return (req, res) => {
    res.json({ healthy: true, environment: settings.environment, startedAt });
  };
}

module.exports = { handler };
"""

_MY_LOGGER_JS = """'use strict';

// TODO: ship request logs to the central collector instead of stdout
function requests(environment) {
  return (req, res, next) => {
    if (environment !== 'test') {
      console.log(`${req.method} ${req.url}`);
    }
    next();
  };
}

module.exports = { requests };
"""

_MY_SERVER_V095 = """'use strict';

const createApp = require('./src/app');

const settings = {
  port: Number(process.env.PORT) || 3000,
  environment: process.env.NODE_ENV || 'production',
};

const app = createApp(settings);

app.listen(settings.port, () => {
  console.log(`Server started on port ${settings.port}`);
});
"""

_MY_SERVER_V100 = """'use strict';

const createApp = require('./src/app');

let config;
try {
  config = require('./config/production.json');
} catch (err) {
  console.error('Failed to load configuration file');
  throw err;
}

const app = createApp(config);
const port = Number(process.env.PORT) || config.port;

app.listen(port, () => {
  console.log(`Server started on port ${port}`);
});
"""

_MY_COPIES = ["COPY server.js ./", "COPY src/ ./src/"]

_MY_TESTS_V095 = _tests(
    "app",
    [
        ("server starts an HTTP listener", [{"file": "server.js", "contains": "app.listen("}]),
        ("app factory is exported", [{"file": "src/app.js", "contains": "module.exports = createApp"}]),
        ("health endpoint is mounted", [{"file": "src/app.js", "contains": "'/healthz'"}]),
        ("health handler reports environment", [{"file": "src/health.js", "contains": "environment"}]),
        ("status route answers ok", [{"file": "src/routes.js", "matches": "status: 'ok'"}]),
        (
            "start script runs the server",
            [{"file": "package.json", "json_path": "scripts.start", "equals": "node server.js"}],
        ),
    ],
)

_MY_TESTS_V100 = _tests(
    "app",
    [
        ("server starts an HTTP listener", [{"file": "server.js", "contains": "app.listen("}]),
        ("server reads its port from configuration", [{"file": "server.js", "contains": "config.port"}]),
        ("app factory is exported", [{"file": "src/app.js", "contains": "module.exports = createApp"}]),
        ("health endpoint is mounted", [{"file": "src/app.js", "contains": "'/healthz'"}]),
        ("health handler reports environment", [{"file": "src/health.js", "contains": "environment"}]),
        ("status route answers ok", [{"file": "src/routes.js", "matches": "status: 'ok'"}]),
        ("greeting input is bounded", [{"file": "src/routes.js", "contains": ".slice(0, 64)"}]),
        (
            "start script runs the server",
            [{"file": "package.json", "json_path": "scripts.start", "equals": "node server.js"}],
        ),
    ],
)

MY_APPLICATION = SampleApp(
    name="my-application",
    description="Customer-facing web application (the demo's default app)",
    commits=[
        SampleCommit(
            message="Initial release: express app with inline settings",
            files={
                "package.json": _package(
                    "my-application",
                    "0.9.5",
                    "Customer-facing web application",
                    {"express": "^4.19.2", "helmet": "^7.1.0"},
                    {"eslint": "^8.57.0"},
                ),
                "server.js": _MY_SERVER_V095,
                "src/app.js": _MY_APP_JS,
                "src/routes.js": _MY_ROUTES_JS,
                "src/health.js": _MY_HEALTH_JS,
                "src/logger.js": _MY_LOGGER_JS,
                "tests/app.test.json": _MY_TESTS_V095,
                "Dockerfile": _dockerfile(_MY_COPIES, 3000),
                ".dockerignore": DOCKERIGNORE,
                "README.md": "# my-application\n\nCustomer-facing web application.\n",
            },
            release="v0.9.5",
        ),
        SampleCommit(
            message="feat: load production settings from config/production.json",
            files={
                "package.json": _package(
                    "my-application",
                    "1.0.0",
                    "Customer-facing web application",
                    {"express": "^4.19.2", "helmet": "^7.1.0"},
                    {"eslint": "^8.57.0"},
                ),
                "server.js": _MY_SERVER_V100,
                "tests/app.test.json": _MY_TESTS_V100,
            },
        ),
    ],
)

# The fix the demo's user applies; tests commit these two files.
MY_APPLICATION_FIX_CONFIG = (
    json.dumps(
        {
            "port": 3000,
            "environment": "production",
            "database": {"host": "prod-db.internal", "port": 5432},
            "logging": {"level": "info"},
        },
        indent=2,
    )
    + "\n"
)
MY_APPLICATION_FIX_DOCKERFILE = _dockerfile([*_MY_COPIES, "COPY config/ ./config/"], 3000)

# --- microservice-one (orders) ----------------------------------------------------------------


def _service_server(default_port: int) -> str:
    return f"""'use strict';

const express = require('express');
const routes = require('./src/routes');

const PORT = Number(process.env.PORT) || {default_port};

const app = express();
app.use(express.json());
app.get('/healthz', (req, res) => res.json({{ healthy: true }}));
app.use('/api', routes);

app.listen(PORT, () => {{
  console.log(`Server started on port ${{PORT}}`);
}});
"""


_ORDERS_ROUTES_V1 = """'use strict';

const express = require('express');
const store = require('./store');

const router = express.Router();

router.get('/orders', (req, res) => {
  res.json(store.list());
});

router.post('/orders', (req, res) => {
  const order = store.add(req.body);
  res.status(201).json(order);
});

module.exports = router;
"""

_ORDERS_ROUTES_V2 = """'use strict';

const express = require('express');
const store = require('./store');

const router = express.Router();

router.get('/orders', (req, res) => {
  const limit = Math.min(Number(req.query.limit) || 50, 200);
  res.json(store.list().slice(0, limit));
});

router.get('/orders/:id', (req, res) => {
  const order = store.get(req.params.id);
  if (!order) {
    res.status(404).json({ error: 'order not found' });
    return;
  }
  res.json(order);
});

router.post('/orders', (req, res) => {
  const order = store.add(req.body);
  res.status(201).json(order);
});

module.exports = router;
"""

_ORDERS_STORE = """'use strict';

const orders = new Map();
let nextId = 1;

function add(fields) {
  const order = { id: String(nextId++), items: fields.items || [], createdAt: Date.now() };
  orders.set(order.id, order);
  return order;
}

function get(id) {
  return orders.get(String(id));
}

function list() {
  return Array.from(orders.values());
}

module.exports = { add, get, list };
"""

_SERVICE_COPIES = ["COPY server.js ./", "COPY src/ ./src/"]

MICROSERVICE_ONE = SampleApp(
    name="microservice-one",
    description="Orders service",
    commits=[
        SampleCommit(
            message="Initial orders service",
            files={
                "package.json": _package(
                    "microservice-one",
                    "1.0.0",
                    "Orders service",
                    {"express": "^4.19.2"},
                    {"eslint": "^8.57.0"},
                ),
                "server.js": _service_server(8080),
                "src/routes.js": _ORDERS_ROUTES_V1,
                "src/store.js": _ORDERS_STORE,
                "tests/orders.test.json": _tests(
                    "orders",
                    [
                        ("server listens", [{"file": "server.js", "contains": "app.listen(PORT"}]),
                        (
                            "orders can be listed",
                            [{"file": "src/routes.js", "contains": "router.get('/orders'"}],
                        ),
                        (
                            "store keeps orders by id",
                            [{"file": "src/store.js", "contains": "orders.set(order.id"}],
                        ),
                    ],
                ),
                "Dockerfile": _dockerfile(_SERVICE_COPIES, 8080),
                ".dockerignore": DOCKERIGNORE,
            },
            release="v1.0.0",
        ),
        SampleCommit(
            message="feat: order lookup by id and bounded listing",
            files={
                "package.json": _package(
                    "microservice-one",
                    "1.1.0",
                    "Orders service",
                    {"express": "^4.19.2"},
                    {"eslint": "^8.57.0"},
                ),
                "src/routes.js": _ORDERS_ROUTES_V2,
                "tests/orders.test.json": _tests(
                    "orders",
                    [
                        ("server listens", [{"file": "server.js", "contains": "app.listen(PORT"}]),
                        (
                            "orders can be listed",
                            [{"file": "src/routes.js", "contains": "router.get('/orders'"}],
                        ),
                        ("unknown order is a 404", [{"file": "src/routes.js", "contains": "status(404)"}]),
                        (
                            "store keeps orders by id",
                            [{"file": "src/store.js", "contains": "orders.set(order.id"}],
                        ),
                    ],
                ),
            },
            release="v1.1.0",
        ),
    ],
)

# --- microservice-two (inventory) -------------------------------------------------------------

_INVENTORY_ROUTES = """'use strict';

const express = require('express');
const stock = require('./stock');

const router = express.Router();

router.get('/stock/:sku', (req, res) => {
  res.json({ sku: req.params.sku, available: stock.available(req.params.sku) });
});

router.post('/stock/:sku/reserve', (req, res) => {
  const ok = stock.reserve(req.params.sku, Number(req.body.quantity) || 1);
  res.status(ok ? 200 : 409).json({ reserved: ok });
});

module.exports = router;
"""

_INVENTORY_STOCK_V1 = """'use strict';

const levels = new Map([['sku-1', 10], ['sku-2', 4]]);

function available(sku) {
  return levels.get(sku) || 0;
}

function reserve(sku, quantity) {
  const current = available(sku);
  if (current < quantity) {
    return false;
  }
  levels.set(sku, current - quantity);
  return true;
}

module.exports = { available, reserve };
"""

_INVENTORY_STOCK_V2 = _INVENTORY_STOCK_V1.replace(
    "module.exports = { available, reserve };",
    """function restock(sku, quantity) {
  levels.set(sku, available(sku) + quantity);
}

module.exports = { available, reserve, restock };""",
)

_INVENTORY_TESTS = _tests(
    "inventory",
    [
        ("server listens", [{"file": "server.js", "contains": "app.listen(PORT"}]),
        (
            "reservations are refused when stock is short",
            [{"file": "src/stock.js", "contains": "current < quantity"}],
        ),
        ("reserve answers 409 on conflict", [{"file": "src/routes.js", "contains": "409"}]),
    ],
)

MICROSERVICE_TWO = SampleApp(
    name="microservice-two",
    description="Inventory service",
    commits=[
        SampleCommit(
            message="Initial inventory service",
            files={
                "package.json": _package(
                    "microservice-two",
                    "1.2.0",
                    "Inventory service",
                    {"express": "^4.19.2", "axios": "^1.7.4"},
                    {"eslint": "^8.57.0"},
                ),
                "server.js": _service_server(8081),
                "src/routes.js": _INVENTORY_ROUTES,
                "src/stock.js": _INVENTORY_STOCK_V1,
                "tests/inventory.test.json": _INVENTORY_TESTS,
                "Dockerfile": _dockerfile(_SERVICE_COPIES, 8081),
                ".dockerignore": DOCKERIGNORE,
            },
            release="v1.2.0",
        ),
        SampleCommit(
            message="feat: restock endpoint support in stock module",
            files={
                "package.json": _package(
                    "microservice-two",
                    "1.3.0",
                    "Inventory service",
                    {"express": "^4.19.2", "axios": "^1.7.4"},
                    {"eslint": "^8.57.0"},
                ),
                "src/stock.js": _INVENTORY_STOCK_V2,
            },
            release="v1.3.0",
        ),
    ],
)

# --- payments-api -----------------------------------------------------------------------------
# Healthy at runtime (its config is copied into the image) but it pins lodash and minimist
# versions with published advisories, so its security scan and production gate fail.

_PAYMENTS_SERVER = """'use strict';

const express = require('express');
const config = require('./config/default.json');
const payments = require('./src/payments');

const app = express();
app.use(express.json());
app.get('/healthz', (req, res) => res.json({ healthy: true }));
app.post('/payments', (req, res) => {
  const result = payments.charge(req.body, config.currency);
  res.status(result.ok ? 201 : 422).json(result);
});

app.listen(config.port, () => {
  console.log(`Server started on port ${config.port}`);
});
"""

_PAYMENTS_JS = """'use strict';

const _ = require('lodash');
const validate = require('./validate');

// FIXME: amounts are floats; switch to integer minor units before adding more currencies
function charge(request, currency) {
  const errors = validate.payment(request);
  if (errors.length > 0) {
    return { ok: false, errors };
  }
  var amount = _.round(Number(request.amount), 2);
  if (request.currency && request.currency != currency) {
    return { ok: false, errors: ['unsupported currency'] };
  }
  return { ok: true, amount, currency, reference: `pay_${Date.now()}` };
}

module.exports = { charge };
"""

_PAYMENTS_VALIDATE = """'use strict';

function payment(request) {
  const errors = [];
  if (!request || typeof request !== 'object') {
    return ['request body must be an object'];
  }
  if (!(Number(request.amount) > 0)) {
    errors.push('amount must be positive');
  }
  if (!request.card || String(request.card).length < 12) {
    errors.push('card number is too short');
  }
  return errors;
}

module.exports = { payment };
"""

_PAYMENTS_CONFIG = json.dumps({"port": 3000, "currency": "EUR"}, indent=2) + "\n"

_PAYMENTS_TESTS = _tests(
    "payments",
    [
        ("server loads its config", [{"file": "server.js", "contains": "require('./config/default.json')"}]),
        ("config file is present", [{"file": "config/default.json", "exists": True}]),
        (
            "config names a currency",
            [{"file": "config/default.json", "json_path": "currency", "equals": "EUR"}],
        ),
        ("charges validate input", [{"file": "src/payments.js", "contains": "validate.payment(request)"}]),
        ("amount must be positive", [{"file": "src/validate.js", "contains": "amount must be positive"}]),
    ],
)


def _payments_package(version: str) -> str:
    return _package(
        "payments-api",
        version,
        "Payments API",
        {"express": "^4.19.2", "lodash": "4.17.15", "minimist": "1.2.5"},
        {"eslint": "^8.57.0"},
    )


PAYMENTS_API = SampleApp(
    name="payments-api",
    description="Payments API (carries dependencies with known vulnerabilities)",
    commits=[
        SampleCommit(
            message="Initial payments API",
            files={
                "package.json": _payments_package("2.3.0"),
                "server.js": _PAYMENTS_SERVER,
                "config/default.json": _PAYMENTS_CONFIG,
                "src/payments.js": _PAYMENTS_JS,
                "src/validate.js": _PAYMENTS_VALIDATE,
                "tests/payments.test.json": _PAYMENTS_TESTS,
                "Dockerfile": _dockerfile([*_SERVICE_COPIES, "COPY config/ ./config/"], 3000),
                ".dockerignore": DOCKERIGNORE,
            },
            release="v2.3.0",
        ),
        SampleCommit(
            message="chore: document the payments endpoint",
            files={
                "package.json": _payments_package("2.4.0"),
                "README.md": "# payments-api\n\nPOST /payments with {amount, currency, card}.\n",
            },
            release="v2.4.0",
        ),
    ],
)

SAMPLE_APPS: dict[str, SampleApp] = {
    app.name: app for app in (MY_APPLICATION, MICROSERVICE_ONE, MICROSERVICE_TWO, PAYMENTS_API)
}
