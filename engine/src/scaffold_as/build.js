// Appends descriptor.json to the module asc built (build/raw.wasm) as the custom section
// "sluice_effect" (ABI.md, section 2) and writes NAME.wasm. AssemblyScript has no way to
// declare a custom section, so it is added here: id 0, the section's size, the name, the JSON.
const fs = require("fs");
const uleb = (n) => {
  const out = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return Buffer.from(out);
};
const json = fs.readFileSync("descriptor.json");
JSON.parse(json.toString("utf8")); // a clear error here rather than a refusal by the host
const name = Buffer.from("sluice_effect");
const body = Buffer.concat([uleb(name.length), name, json]);
const section = Buffer.concat([Buffer.from([0]), uleb(body.length), body]);
const raw = fs.readFileSync("build/raw.wasm");
fs.writeFileSync("NAME.wasm", Buffer.concat([raw, section]));
console.log(`NAME.wasm: ${raw.length + section.length} bytes`);
