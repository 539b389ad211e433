/**
 * The kqueue backend against the Poller contract (test/poller_contract.ts), on the
 * platforms that have kqueue (macOS, FreeBSD). Elsewhere the suite is skipped, with the
 * reason printed: the backend's encodings are still checked on every platform by
 * test/kqueue_encoding.test.ts.
 */
import { test } from "bun:test";
import { HAVE_KQUEUE } from "../ffi/kqueue.ts";
import { KqueuePoller } from "../lib/driver/readiness/kqueue.ts";
import { pollerContract } from "./poller_contract.ts";

if (HAVE_KQUEUE) {
  pollerContract("kqueue", "edge", () => new KqueuePoller());
} else {
  console.log(
    `kqueue_backend: skipped on ${process.platform}: kqueue exists only on macOS and FreeBSD ` +
      "(its kevent encodings are tested by kqueue_encoding.test.ts on every platform)",
  );
}

test.skipIf(!HAVE_KQUEUE)("a KqueuePoller can be made and closed on this platform", () => {
  const p = new KqueuePoller();
  if (p.fd < 0 || p.name !== "kqueue") throw new Error(`unexpected poller: fd ${p.fd}, name ${p.name}`);
  p.close();
});
