// @azure/web-pubsub-express as the emulator's upstream, configured as its README shows.
//
// Listens on 127.0.0.1:$WPS_PORT and allows the endpoints in $WPS_ALLOWED (comma-separated: with
// two, express answers the abuse-protection check with two WebHook-Allowed-Origin lines).
// Every event it handles is reported on stdout as a JSON line; {"kind":"ready"} once it listens.
//
// connect: rejects with 401 when the query has reject=1; otherwise names the user (the token's,
// or "express-user"), joins "lobby" and sets the state {visits: 0}.
// user events: counts visits in the state and answers JSON {echo, visits, dataType}.
import express from "express";
import { WebPubSubEventHandler } from "@azure/web-pubsub-express";

const report = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const allowed = (process.env.WPS_ALLOWED ?? "").split(",").filter(Boolean);

const handler = new WebPubSubEventHandler("chat", {
  path: "/eventhandler",
  allowedEndpoints: allowed,
  handleConnect(req, res) {
    report({ kind: "connect", connectionId: req.context.connectionId,
             userId: req.context.userId ?? null, query: req.queries });
    if (req.queries?.reject) {
      res.fail(401, "express says no");
      return;
    }
    res.setState("visits", 0);
    res.success({ userId: req.context.userId ?? "express-user", groups: ["lobby"] });
  },
  handleUserEvent(req, res) {
    const visits = (req.context.states.visits ?? 0) + 1;
    report({ kind: "event", event: req.context.eventName, connectionId: req.context.connectionId,
             userId: req.context.userId ?? null, data: req.data, dataType: req.dataType,
             states: req.context.states });
    res.setState("visits", visits);
    res.success(JSON.stringify({ echo: req.data, visits, dataType: req.dataType }), "json");
  },
  onConnected(req) {
    report({ kind: "connected", connectionId: req.context.connectionId,
             userId: req.context.userId ?? null, states: req.context.states });
  },
  onDisconnected(req) {
    report({ kind: "disconnected", connectionId: req.context.connectionId,
             reason: req.reason ?? null, states: req.context.states });
  },
});

const app = express();
app.use(handler.getMiddleware());
const server = app.listen(Number(process.env.WPS_PORT), "127.0.0.1", () => report({ kind: "ready" }));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
