// aws-local-stepfunctions uses Promise.withResolvers (Node 22+). Hearth requires Node 22, but local mode
// and the tests still run on Node 20 (past its end of life) with this.
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
