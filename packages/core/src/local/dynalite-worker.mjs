// Runs dynalite on its own thread, so that the embedded DynamoDB and the app share the machine's
// cores instead of one event loop.
import { parentPort, workerData } from "node:worker_threads";
import dynalite from "dynalite";

const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0, path: workerData.path });
server.once("error", (error) => parentPort.postMessage({ error: error.message }));
server.listen(workerData.port, "127.0.0.1", () => parentPort.postMessage({ port: server.address().port }));
parentPort.on("message", (message) => {
  if (message !== "close") return;
  server.close(() => parentPort.postMessage({ closed: true }));
  server.closeAllConnections?.();
});
