import { packageVitestConfig } from '@sparsekit/test-utils/vitest-config';

export default packageVitestConfig();
