// A router wrapper that keeps every routing it returned, with the block it ran in, so metrics and
// losses can be read after a model's forward pass.
import type { Router, RouterInput, Routing } from '@sparsekit/core';

export interface RoutingRecord<R extends Routing = Routing> {
  block: number;
  routing: R;
}

export interface RecordingRouter<R extends Routing = Routing> extends Router {
  readonly records: RoutingRecord<R>[];
  clear(): void;
}

export function recordRoutings<R extends Routing>(router: {
  readonly numExperts: number;
  route(input: RouterInput): R;
}): RecordingRouter<R> {
  const records: RoutingRecord<R>[] = [];
  return {
    numExperts: router.numExperts,
    records,
    clear: () => {
      records.length = 0;
    },
    route(input: RouterInput): R {
      const routing = router.route(input);
      records.push({ block: input.block, routing });
      return routing;
    },
  };
}
