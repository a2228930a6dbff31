// Validate a .glb or .gltf with the Khronos glTF-Validator and print its report as JSON on stdout.
//
//     node tests/gltf_validate.mjs <validator module dir> <file>
//
// Used by tests/_node_tools.py (validate_gltf); the validator is the npm package that
// scripts/ensure-node-tools.sh installs into .node-tools/.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, resolve } from "node:path";

const [moduleDir, file] = process.argv.slice(2);
const validator = createRequire(import.meta.url)(resolve(moduleDir));
const report = await validator.validateBytes(new Uint8Array(readFileSync(file)), {
    uri: basename(file),
    maxIssues: 0, // every issue, not the first 100
    writeTimestamp: false,
});
process.stdout.write(JSON.stringify(report));
