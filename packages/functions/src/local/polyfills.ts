// aws-local-stepfunctions uses Promise.withResolvers (Node 22+). Local mode also runs on Node 20.
const promise = Promise as unknown as { withResolvers?: () => unknown };
if (!promise.withResolvers) {
  promise.withResolvers = () => {
    let resolve: (value: unknown) => void = () => {};
    let reject: (reason?: unknown) => void = () => {};
    const created = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise: created, resolve, reject };
  };
}
