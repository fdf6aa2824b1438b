import { createHash, createHmac, pbkdf2 } from "crypto";

/**
 * SCRAM-SHA-256 verifiers as PostgreSQL stores them in pg_authid (RFC 5803 form). The program
 * sets each login's password to the verifier of its generated password and a stable salt of its
 * own, and the pooler's auth file holds the very same string: PgBouncer checks a client's proof
 * against it and logs in to the server with the key it recovers from that proof (SCRAM
 * pass-through). A different salt on either side and the pooled login fails.
 */

/** PostgreSQL's default scram_iterations; the verifier carries it, clients follow it. */
export const SCRAM_ITERATIONS = 4096;

const PREFIX = "SCRAM-SHA-256$";

/**
 * Verifiers computed in this process, by salt, iterations and password: PBKDF2 is the costly
 * part (about 6 ms per login on the development machine), and a run that sees the same pair
 * twice (a moving tenant's two placements, the offline check's placeholders) computes it once.
 */
const computed = new Map<string, Promise<string>>();

/**
 * The verifier of `password` under `saltBase64`. PostgreSQL SASLpreps a password first; for
 * printable ASCII (the generated passwords are letters and digits) SASLprep changes nothing, and
 * anything else is refused here rather than risk a verifier the server would not match.
 * pbkdf2 runs on libuv's thread pool, so a fleet's verifiers do not stall the program.
 */
export function scramVerifier(
  password: string,
  saltBase64: string,
  iterations = SCRAM_ITERATIONS,
): Promise<string> {
  const key = `${iterations}:${saltBase64}:${password}`;
  let verifier = computed.get(key);
  if (verifier === undefined) {
    verifier = compute(password, saltBase64, iterations);
    computed.set(key, verifier);
    // A failure is not kept: the next call reports it again.
    verifier.catch(() => computed.delete(key));
  }
  return verifier;
}

async function compute(password: string, saltBase64: string, iterations: number): Promise<string> {
  if (!/^[\x20-\x7e]+$/.test(password)) {
    throw new Error("a SCRAM verifier is computed only for non-empty printable ASCII passwords");
  }
  const salt = Buffer.from(saltBase64, "base64");
  if (salt.length === 0) throw new Error("a SCRAM verifier needs a non-empty base64 salt");
  const salted = await new Promise<Buffer>((resolve, reject) =>
    pbkdf2(password, salt, iterations, 32, "sha256", (err, key) =>
      err === null ? resolve(key) : reject(err),
    ),
  );
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  const storedKey = createHash("sha256").update(clientKey).digest();
  const serverKey = createHmac("sha256", salted).update("Server Key").digest();
  return `${PREFIX}${iterations}:${salt.toString("base64")}$${storedKey.toString("base64")}:${serverKey.toString("base64")}`;
}

/** True for a string in the form scramVerifier produces (and pg_authid holds). */
export function isScramVerifier(value: string): boolean {
  return /^SCRAM-SHA-256\$\d+:[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*:[A-Za-z0-9+/]+=*$/.test(value);
}
