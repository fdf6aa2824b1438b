import * as fs from "fs";
import * as path from "path";

/**
 * Reading the files a user names (tenant files, stack files, policy configs) so that no file can
 * hang or flood the reader: only regular files, at most MAX_INPUT_BYTES, opened non-blocking (a
 * FIFO swapped in after the check cannot block the open), never from /proc, /sys or /dev. Each
 * refusal is one sentence the caller prefixes with the file's name.
 */

/** Far above any tenant or stack file (a few hundred bytes), far below what could hurt. */
export const MAX_INPUT_BYTES = 1024 * 1024;

/** Pseudo file systems whose "files" are endless, blocking or have side effects when read. */
const PSEUDO_ROOTS = ["/proc", "/sys", "/dev"];

const underPseudo = (p: string) => PSEUDO_ROOTS.some((r) => p === r || p.startsWith(`${r}/`));

function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return "a directory";
  if (st.isFIFO()) return "a FIFO (named pipe)";
  if (st.isCharacterDevice() || st.isBlockDevice()) return "a device";
  if (st.isSocket()) return "a socket";
  return "not a regular file";
}

/** The file's text, or the reason it is not read. */
export function readInputFile(
  file: string,
  maxBytes = MAX_INPUT_BYTES,
): { text: string } | { problem: string } {
  let st: fs.Stats;
  try {
    const link = fs.lstatSync(file);
    if (link.isSymbolicLink()) {
      let real: string;
      try {
        real = fs.realpathSync(file);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        return {
          problem:
            code === "ELOOP"
              ? "is a symbolic link loop"
              : `is a symbolic link to a missing file (${fs.readlinkSync(file)})`,
        };
      }
      if (underPseudo(real))
        return { problem: `is a symbolic link into ${real}: only regular files are read` };
    }
    st = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return {
      problem: code === "ENOENT" ? "not found" : `cannot be read (${code ?? (e as Error).message})`,
    };
  }
  if (underPseudo(path.resolve(file)))
    return { problem: "is in a pseudo file system: only regular files are read" };
  if (!st.isFile()) return { problem: `is ${kindOf(st)}, not a file` };
  if (st.size > maxBytes) return { problem: `is ${st.size} bytes; at most ${maxBytes} are read` };
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    return {
      problem: `cannot be opened (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    };
  }
  try {
    const opened = fs.fstatSync(fd);
    if (!opened.isFile()) return { problem: `is ${kindOf(opened)}, not a file` };
    const buf = Buffer.alloc(Math.min(maxBytes, opened.size) + 1);
    let n = 0;
    for (;;) {
      const got = fs.readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
      if (n === buf.length)
        return { problem: `is larger than ${maxBytes} bytes; at most that is read` };
    }
    return { text: buf.subarray(0, n).toString("utf8") };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Where a command may write a file the user names: not into /proc, /sys or /dev, not over
 * something that is not a regular file. Returns the absolute path, or the reason.
 */
export function outputPathProblem(file: string): string | undefined {
  const abs = path.resolve(file);
  let existing = abs;
  while (!fs.existsSync(existing) && path.dirname(existing) !== existing)
    existing = path.dirname(existing);
  let real = existing;
  try {
    real = fs.realpathSync(existing);
  } catch {
    // A dangling link in the path: the write fails with its own message.
  }
  if (underPseudo(abs) || underPseudo(real))
    return "is in a pseudo file system (/proc, /sys, /dev): choose a regular folder";
  if (existing === abs && !fs.statSync(abs).isFile())
    return `is ${kindOf(fs.statSync(abs))}, not a file`;
  if (existing !== abs && !fs.statSync(existing).isDirectory())
    return `cannot be created: ${existing} is not a folder`;
  return undefined;
}
