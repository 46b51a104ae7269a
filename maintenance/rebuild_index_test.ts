import { localfsLocations, memoryLocations } from "../tests/locations.ts";
import { registerRebuildScenarios } from "../tests/rebuild_scenarios.ts";

// The same scenarios run on S3 in tests/s3_scenarios_test.ts.
registerRebuildScenarios(memoryLocations);
registerRebuildScenarios(localfsLocations);
