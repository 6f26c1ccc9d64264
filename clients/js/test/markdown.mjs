// Test support: the code blocks of a Markdown file that are marked as tested, so that the
// documentation shows exactly the code the tests run or compile.
//
// A marked block is a fenced code block right after a line `<!-- test: NAME -->`.
import { readFileSync } from "node:fs";

/** The marked code blocks of `path`, by name; throws when a name is missing or repeated. */
export function testedBlocks(path, names) {
  const text = readFileSync(path, "utf8");
  const blocks = new Map();
  const marked = /^<!-- test: (\S+) -->\n```[\w-]*\n([\s\S]*?)^```$/gm;
  for (const [, name, code] of text.matchAll(marked)) {
    if (blocks.has(name)) throw new Error(`${path}: two code blocks are marked ${name}`);
    blocks.set(name, code);
  }
  for (const name of names) {
    if (!blocks.has(name)) throw new Error(`${path}: no code block marked <!-- test: ${name} -->`);
  }
  return blocks;
}
