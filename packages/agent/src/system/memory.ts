import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { MemoryPort } from "../ports";

/**
 * The agent's memory as a file (`<stateDir>/slots.json`), written whole and renamed into place, and
 * tied to the kernel's boot id: after a reboot (a resume from the warm pool) no runner of before is
 * running, so nothing is remembered.
 */
export function fileMemory(file: string, bootIdFile = "/proc/sys/kernel/random/boot_id"): MemoryPort {
  const bootId = () => readFile(bootIdFile, "utf8").then((id) => id.trim());
  return {
    async load() {
      let saved: { bootId?: unknown; value?: unknown };
      try {
        saved = JSON.parse(await readFile(file, "utf8"));
      } catch {
        return null;
      }
      return saved.bootId === (await bootId()) ? saved.value : null;
    },
    async save(value) {
      await mkdir(dirname(file), { recursive: true });
      const partial = `${file}.${process.pid}.tmp`;
      await writeFile(partial, JSON.stringify({ bootId: await bootId(), value }), { mode: 0o600 });
      await rename(partial, file);
    },
  };
}
