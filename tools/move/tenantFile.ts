import * as fs from "fs";
import { parseDocument } from "yaml";

/**
 * The tenant file as a move reads and writes it: whether it still declares the move, and its
 * rewrite to the new tier (or back), keeping comments and layout.
 */

/** True while the file still declares the move to `to`. */
export function declaresMove(file: string, to: string): boolean {
  const doc = parseDocument(fs.readFileSync(file, "utf8"));
  return doc.getIn(["move", "to"]) === to;
}

export function fileSaysTier(file: string, tier: string): boolean {
  return parseDocument(fs.readFileSync(file, "utf8")).get("tier") === tier;
}

/** Sets `tier` and drops `move`, keeping the file's comments and layout. */
export function rewriteTenantFile(file: string, tier: string): void {
  const doc = parseDocument(fs.readFileSync(file, "utf8"));
  doc.set("tier", tier);
  doc.delete("move");
  writeAtomically(file, doc.toString());
}

/** Undoes rewriteTenantFile after a give-back: the file declares the move again. */
export function restoreTenantFile(file: string, from: string, to: string): void {
  const doc = parseDocument(fs.readFileSync(file, "utf8"));
  doc.set("tier", from);
  doc.setIn(["move", "to"], to);
  writeAtomically(file, doc.toString());
}

function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}
