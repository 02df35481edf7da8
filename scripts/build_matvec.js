// Compiles chargen/export/matvec.wat to chargen/export/matvec.wasm, the web page's SIMD kernel, which
// is checked in so that nothing but Python is needed to export a page. Needs wabt from npm:
//   npm install --prefix /tmp/wabt wabt@1.0.39 && NODE_PATH=/tmp/wabt/node_modules node scripts/build_matvec.js
// With --check it writes nothing and exits 1 when the checked-in bytes differ from the text's.
"use strict";
const fs = require("fs");
const path = require("path");

const folder = path.join(__dirname, "..", "chargen", "export");
const source = path.join(folder, "matvec.wat"), target = path.join(folder, "matvec.wasm");

require("wabt")().then(wabt => {
  const module = wabt.parseWat("matvec.wat", fs.readFileSync(source, "utf8"), { simd: true });
  module.validate();
  const bytes = Buffer.from(module.toBinary({}).buffer);  // no names section: the page needs none
  if (process.argv.includes("--check")) {
    const same = fs.existsSync(target) && bytes.equals(fs.readFileSync(target));
    console.log(same ? "matvec.wasm is up to date" : "matvec.wasm differs from matvec.wat: rebuild it");
    process.exit(same ? 0 : 1);
  }
  fs.writeFileSync(target, bytes);
  console.log(`wrote ${path.relative(process.cwd(), target)} (${bytes.length} bytes)`);
});
