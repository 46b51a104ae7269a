import { localfsLocations, memoryLocations } from "./locations.ts";
import { registerStoreScenarios } from "./store_scenarios.ts";

// The same scenarios run on S3 in tests/s3_scenarios_test.ts.
registerStoreScenarios(memoryLocations);
registerStoreScenarios(localfsLocations);
