import { localfsLocations, memoryLocations } from "../tests/locations.ts";
import { registerVerifyScenarios } from "../tests/verify_scenarios.ts";

registerVerifyScenarios(memoryLocations);
registerVerifyScenarios(localfsLocations);
