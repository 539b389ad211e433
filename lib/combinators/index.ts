/**
 * Combinators: run several futures concurrently inside one task (join, tryJoin, select,
 * race) or as a set of spawned tasks (JoinSet).
 *
 * Cancellation is part of every contract: whatever a combinator abandons — select's and
 * race's losers, the rest of a failed tryJoin, the tasks of a closed JoinSet — is cancelled
 * (`cancel()`, JS's Drop) before the combinator returns, so their timers, wakers and
 * registrations are gone, and the asynchronous cleanup they leave (a generator's finally
 * that yields) has finished. A JoinSet's aborted tasks drive their own cleanup; its
 * `shutdown()` waits for it.
 *
 * Cancel safety at a glance:
 *
 * | operation                  | cancel-safe? |
 * |----------------------------|--------------|
 * | join / joinAll             | as its children: cancelling it cancels every unfinished child |
 * | tryJoin / tryJoinAll       | as its children |
 * | select / race              | as its children; losers are always cancelled, so prefer cancel-safe branches |
 * | JoinSet `joinNext()`       | yes — a finished task stays in the set until joined |
 * | JoinSet `shutdown()`       | yes — the tasks are already aborted; calling it again resumes |
 *
 * Must never: leave an abandoned future un-cancelled.
 */
export { join, joinAll, tryJoin, tryJoinAll, select, race, type Output, type JoinOutputs, type Selected } from "./group.ts";
export { JoinSet, AbortHandle, type JoinNext, type Shutdown } from "./joinset.ts";
