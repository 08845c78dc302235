// Tests that need worker threads (the native dup addon) skip when it did not build, as the relay then runs
// single-threaded (README, install); BURROW_REQUIRE_NATIVE=1 (CI) makes the missing addon a failure instead.
import { nativeAddon } from '../../src/native/native-addon.js';

/** A skip reason for node:test when the addon is missing and not required, else false. */
export const NO_THREADS_SKIP: string | false =
  !nativeAddon.available && process.env['BURROW_REQUIRE_NATIVE'] !== '1'
    ? `native addon unavailable (${nativeAddon.reason ?? 'not built'}): the relay runs single-threaded; BURROW_REQUIRE_NATIVE=1 makes this a failure`
    : false;
