#!/usr/bin/env node
// A `solc` executable over solc-js (npm `solc`), for machines that cannot download a native compiler.
// It speaks the subset of the native CLI that py-solc-x, ape-solidity and forge use:
// `--version` and `--standard-json` (input on stdin, imports resolved from disk).
"use strict";
const fs = require("fs");
const path = require("path");

const projectRoot = path.resolve(__dirname, "..");
const solc = require(path.join(projectRoot, "node_modules", "solc"));

function optionValues(argv, name) {
  const values = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === name && i + 1 < argv.length) values.push(argv[++i]);
    else if (argv[i].startsWith(name + "=")) values.push(argv[i].slice(name.length + 1));
  }
  return values.flatMap((v) => v.split(","));
}

function importResolver(argv) {
  const roots = [
    ...optionValues(argv, "--base-path"),
    ...optionValues(argv, "--include-path"),
    process.cwd(),
    path.join(projectRoot, "node_modules"),
  ];
  return (sourcePath) => {
    const candidates = path.isAbsolute(sourcePath)
      ? [sourcePath]
      : roots.map((root) => path.resolve(root, sourcePath));
    for (const candidate of candidates) {
      if (fs.existsSync(candidate) && fs.statSync(candidate).isFile()) {
        return { contents: fs.readFileSync(candidate, "utf8") };
      }
    }
    return { error: `File not found: ${sourcePath} (searched ${roots.join(", ")})` };
  };
}

function main(argv) {
  if (argv.includes("--version")) {
    process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
    return 0;
  }
  if (argv.includes("--standard-json")) {
    const input = fs.readFileSync(0, "utf8");
    process.stdout.write(solc.compile(input, { import: importResolver(argv) }));
    process.stdout.write("\n");
    return 0;
  }
  process.stderr.write("this solc shim supports only --version and --standard-json\n");
  return 1;
}

process.exitCode = main(process.argv.slice(2));
