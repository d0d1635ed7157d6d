import { configure } from "@testing-library/react";

// waitFor and findBy* give up after 1 s by default: a bound on how long a live update may take
// on a busy CI machine, which is not what these tests measure. They wait as long as a test may.
configure({ asyncUtilTimeout: 20_000 });
