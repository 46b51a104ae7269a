/**
 * For the CLI and the HTTP server: every Location registry opens `s3://`
 * Locations, loading the S3 driver (and the AWS SDK) only when the first one
 * is opened, so that a command on a local store starts without it. Imported
 * for its effect; library users import `@capsa/capsa/drivers/s3` instead.
 *
 * @module
 */

import { provideS3Opener } from "./location.ts";

provideS3Opener(async (url, options) => {
  const { openS3 } = await import("./s3/mod.ts");
  return openS3(url.href, { create: options.create ?? false });
});
