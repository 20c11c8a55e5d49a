// The Node contender: the official @azure/web-pubsub-express handler doing what the Flask app
// does (echo user events, accept connects with a user id), on one process or a cluster.
// PORT, WORKERS (cluster size) and ALLOWED_ENDPOINT come from the environment.
"use strict";
const cluster = require("node:cluster");
const express = require("express");
const { WebPubSubEventHandler } = require("@azure/web-pubsub-express");

const port = Number(process.env.PORT);
const workers = Number(process.env.WORKERS || "1");

if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
} else {
  const handler = new WebPubSubEventHandler("chat", {
    path: "/eventhandler",
    allowedEndpoints: [process.env.ALLOWED_ENDPOINT || "http://127.0.0.1"],
    handleConnect: (req, res) => res.success({ userId: "user1", groups: ["lobby"] }),
    onConnected: () => {},
    handleUserEvent: (req, res) => res.success(req.data, req.dataType),
  });
  const app = express();
  app.use(handler.getMiddleware());
  app.listen(port, "127.0.0.1");
}
