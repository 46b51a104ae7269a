/**
 * The `capsa` command as a new user meets it, in real processes: the
 * installed command (`deno task install`), one host directory per store
 * whatever the spelling of its Location, no false `Degraded` on a new host,
 * a pipe closed early, targets that are not empty, and directory trees
 * that come back as they were.
 */

import assert from "node:assert/strict";
import { capsa, capsaOk, CLI, denoDir, PROCESS_FLAGS, ROOT, runToEnd } from "./processes.ts";
import { S3_TEST_CREDENTIALS, startS3Server } from "./s3_server.ts";
import { pathExists } from "../cli/_files.ts";

const enc = new TextEncoder();

/** Deno's own cache directory, kept out of the sandboxed XDG_CACHE_HOME (tests/processes.ts). */
const DENO_DIR: string = await denoDir();

/** A temporary directory with its own per-user cache (XDG_CACHE_HOME). */
async function sandbox() {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "capsa-user-" }));
  const cache = `${dir}/cache`;
  await Deno.mkdir(cache);
  const env = { XDG_CACHE_HOME: cache, DENO_DIR };
  return {
    dir,
    cache,
    env,
    /** `capsa ARGS…` with this sandbox's cache, run in `dir`. */
    run: (args: string[], stdin?: Uint8Array) =>
      capsa(args, { env, cwd: dir, ...(stdin ? { stdin } : {}) }),
    /** The same, insisting on exit code 0. */
    ok: (args: string[], stdin?: Uint8Array) =>
      capsaOk(args, { env, cwd: dir, ...(stdin ? { stdin } : {}) }),
    /** The host directories made so far under the cache. */
    hostDirs: async () => {
      const names: string[] = [];
      try {
        for await (const e of Deno.readDir(`${cache}/capsa`)) names.push(e.name);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
      return names.sort();
    },
    dispose: () => Deno.remove(dir, { recursive: true }),
  };
}

// ------------------------------------------------------------ the command

Deno.test("deno task install installs a `capsa` command that runs --help and a put/get", async () => {
  const s = await sandbox();
  try {
    const root = `${s.dir}/install-root`;
    const install = await runToEnd(
      new Deno.Command(Deno.execPath(), {
        args: ["task", "--quiet", "install"],
        cwd: ROOT,
        env: { NO_COLOR: "1", DENO_INSTALL_ROOT: root },
        stdout: "piped",
        stderr: "piped",
      }),
    );
    assert.equal(install.code, 0, install.stderr);
    const denoDir = Deno.execPath().replace(/\/[^/]+$/, "");
    const installed = (args: string[], stdin?: Uint8Array) =>
      runToEnd(
        new Deno.Command(`${root}/bin/capsa`, {
          args,
          cwd: s.dir,
          env: {
            NO_COLOR: "1",
            XDG_CACHE_HOME: s.cache,
            DENO_DIR,
            PATH: `${denoDir}:/usr/bin:/bin`,
          },
          stdin: stdin ? "piped" : "null",
          stdout: "piped",
          stderr: "piped",
        }),
        stdin,
      );
    const help = await installed(["--help"]);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^usage: capsa COMMAND LOCATION/m);
    const init = await installed(["init", "store", "--kit", "store.kit"]);
    assert.equal(init.code, 0, init.stderr);
    const put = await installed(["put", "store", "ns", "a.txt"], enc.encode("hello"));
    assert.equal(put.code, 0, put.stderr);
    const get = await installed(["get", "store", "ns", "a.txt"]);
    assert.equal(get.code, 0, get.stderr);
    assert.equal(get.stdout, "hello");
  } finally {
    await s.dispose();
  }
});

// ------------------------------------------------------------ host cache

Deno.test("capsa keys the host directory by the canonical Location: spellings and a symlink share one", async () => {
  const s = await sandbox();
  const server = await startS3Server({ createOnly: true });
  try {
    await s.ok(["init", "store1", "--kit", "store1.kit"]);
    await Deno.symlink(`${s.dir}/store1`, `${s.dir}/link`);
    const hostDirOf = async (location: string) => {
      const r = await s.ok(["status", location, "--json"]);
      return String(JSON.parse(r.stdout).hostDir);
    };
    const dirs = new Set<string>();
    for (
      const spelling of [
        "store1",
        "./store1/",
        `${s.dir}/store1`,
        "link",
        `file://${s.dir}/store1/`,
      ]
    ) {
      dirs.add(await hostDirOf(spelling));
    }
    assert.equal(dirs.size, 1, [...dirs].join(", "));
    assert.equal((await s.hostDirs()).length, 1);

    await server.createBucket("user-bucket");
    const s3 = { ...s.env, ...s3Env() };
    const ok = (args: string[]) => capsaOk(args, { env: s3, cwd: s.dir });
    await ok([
      "init",
      `s3://user-bucket/team/store?endpoint=${server.endpoint}`,
      "--kit",
      "s3.kit",
    ]);
    const s3Dirs = new Set<string>();
    for (
      const spelling of [
        `s3://user-bucket/team/store?endpoint=${server.endpoint}`,
        `s3://user-bucket/team/store/?endpoint=${server.endpoint}/`,
        `s3://user-bucket//team/store/?endpoint=${server.endpoint.toUpperCase()}`,
      ]
    ) {
      s3Dirs.add(String(JSON.parse((await ok(["status", spelling, "--json"])).stdout).hostDir));
    }
    assert.equal(s3Dirs.size, 1, [...s3Dirs].join(", "));
    assert.equal((await s.hostDirs()).length, 2);
  } finally {
    await server.stop();
    await s.dispose();
  }
});

/** The environment of a CLI process that reaches the S3 test server. */
function s3Env(): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: S3_TEST_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3_TEST_CREDENTIALS.secretAccessKey,
  };
}

// ----------------------------------------------------------------- states

/** Every file under a directory with its size and modification time, sorted. */
async function treeState(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (path: string, rel: string) => {
    for await (const e of Deno.readDir(path)) {
      const info = await Deno.lstat(`${path}/${e.name}`);
      if (info.isDirectory) await walk(`${path}/${e.name}`, `${rel}${e.name}/`);
      else out.push(`${rel}${e.name} ${info.size} ${info.mtime?.getTime()}`);
    }
  };
  await walk(dir, "");
  return out.sort();
}

Deno.test("capsa status on a new host and right after move is Ready; ls, stat and get write nothing into the store", async () => {
  const s = await sandbox();
  try {
    await s.ok(["init", "store", "--kit", "store.kit"]);
    await s.ok(["put", "store", "ns", "a.txt"], enc.encode("hello"));
    const statusWith = async (location: string, cache: string) => {
      const r = await capsa(["status", location, "--json"], {
        env: { XDG_CACHE_HOME: cache, DENO_DIR },
        cwd: s.dir,
      });
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as { state: string; problems: string[] };
    };
    // A host that never opened the store: sound, not Degraded.
    const fresh = await statusWith("store", `${s.dir}/new-host-cache`);
    assert.deepEqual([fresh.state, fresh.problems], ["Ready", []]);

    // Read-only commands on a new host write nothing into the store, even with a lost replica.
    await Deno.remove(`${s.dir}/store/system.state/descriptor/store.json`);
    const before = await treeState(`${s.dir}/store`);
    const other = { XDG_CACHE_HOME: `${s.dir}/third-host-cache`, DENO_DIR };
    for (
      const args of [["ls", "store", "ns"], ["ls", "store"], ["stat", "store", "ns", "a.txt"], [
        "get",
        "store",
        "ns",
        "a.txt",
      ], ["get", "store", "ns", "--to", "restored"]]
    ) {
      await capsaOk(args, { env: other, cwd: s.dir });
      assert.deepEqual(await treeState(`${s.dir}/store`), before, args.join(" "));
    }
    const degraded = await statusWith("store", `${s.dir}/third-host-cache`);
    assert.equal(degraded.state, "Degraded", "a lost Location replica still is degradation");
    // A writable open heals it, and writes this host's replica without a word.
    const put = await capsaOk(["put", "store", "ns", "b.txt"], {
      env: other,
      cwd: s.dir,
      stdin: enc.encode("b"),
    });
    assert.equal(put.stderr, "");
    assert.deepEqual((await statusWith("store", `${s.dir}/third-host-cache`)).state, "Ready");

    // Right after a move, on the host that moved it: Ready.
    await s.ok(["move", "store", "moved"]);
    const moved = await statusWith("moved", s.cache);
    assert.deepEqual([moved.state, moved.problems], ["Ready", []]);
  } finally {
    await s.dispose();
  }
});

// ------------------------------------------------------------ closed pipe

Deno.test("capsa ls | head -1 and capsa get | head -c 1 end quietly with exit code 0", async () => {
  const s = await sandbox();
  try {
    await s.ok(["init", "store", "--kit", "store.kit"]);
    const tree = `${s.dir}/tree`;
    await Deno.mkdir(`${tree}/a-directory-with-a-rather-long-name`, { recursive: true });
    for (let i = 0; i < 3000; i++) {
      const name = `file-${String(i).padStart(5, "0")}-with-padding-to-fill-the-pipe.txt`;
      await Deno.writeTextFile(`${tree}/a-directory-with-a-rather-long-name/${name}`, `${i}`);
    }
    await s.ok(["put", "store", "ns", "--from", tree]);
    await s.ok(["put", "store", "ns", "big.bin"], new Uint8Array(4 << 20).fill(7));
    // A real shell pipe whose reader exits after its first line or byte; the writer's code is kept.
    const piped = (args: string[], reader: string) =>
      runToEnd(
        new Deno.Command("bash", {
          args: [
            "-c",
            `"$@" | ${reader} >/dev/null; exit \${PIPESTATUS[0]}`,
            "bash",
            Deno.execPath(),
            "run",
            ...PROCESS_FLAGS,
            CLI,
            ...args,
          ],
          cwd: s.dir,
          env: { NO_COLOR: "1", ...s.env },
          stdout: "piped",
          stderr: "piped",
        }),
      );
    for (
      const [args, reader] of [
        [["ls", "store", "ns"], "head -1"],
        [["ls", "store", "ns", "-l"], "head -1"],
        [["ls", "store", "ns", "--json"], "head -1"],
        [["get", "store", "ns", "big.bin"], "head -c 1"],
      ] as const
    ) {
      const r = await piped([...args], reader);
      assert.deepEqual([r.code, r.stderr], [0, ""], `${args.join(" ")} | ${reader}`);
    }
  } finally {
    await s.dispose();
  }
});

// ---------------------------------------------------------------- targets

/** The error code of a failed run's one error line. */
function errorCode(r: { code: number; stderr: string }): string {
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  return /^capsa: ([a-z_]+): /.exec(lines[0]!)?.[1] ?? lines[0]!;
}

Deno.test("capsa init and move refuse a directory holding any file; init never writes the kit inside the store", async () => {
  const s = await sandbox();
  try {
    // Files whose names a store could never have written: the localfs listing skips them.
    const full = `${s.dir}/full`;
    await Deno.mkdir(`${full}/Photos`, { recursive: true });
    await Deno.writeTextFile(`${full}/Photos/IMG 0001.JPG`, "a photo");
    const before = await treeState(full);
    const init = await s.run(["init", "full", "--kit", "full.kit"]);
    assert.equal(errorCode(init), "location_not_empty");
    assert.match(init.stderr, /Photos\/IMG 0001\.JPG.*choose a new or empty one/);
    assert.deepEqual(await treeState(full), before);
    assert.equal(await pathExists(`${s.dir}/full.kit`), false);

    // Run inside an empty directory, the default kit would land in the store.
    await Deno.mkdir(`${s.dir}/here`);
    const inside = await capsa(["init", "."], { env: s.env, cwd: `${s.dir}/here` });
    assert.equal(errorCode(inside), "kit_inside_store");
    assert.match(inside.stderr, /give --kit FILE outside it/);
    assert.deepEqual(await treeState(`${s.dir}/here`), []);
    const explicit = await s.run(["init", "here", "--kit", "here/sub/../kit.txt"]);
    assert.equal(errorCode(explicit), "kit_inside_store");
    assert.deepEqual(await treeState(`${s.dir}/here`), []);
    await s.ok(["init", "here", "--kit", "here.kit"]);

    // move: the same rule for its destination; the store stays where it is.
    await s.ok(["put", "here", "ns", "a.txt"], enc.encode("a"));
    const move = await s.run(["move", "here", "full"]);
    assert.equal(errorCode(move), "location_not_empty");
    assert.deepEqual(await treeState(full), before);
    assert.equal((await s.ok(["get", "here", "ns", "a.txt"])).stdout, "a");
    await s.ok(["move", "here", "new-home"]);
    assert.equal((await s.ok(["get", "new-home", "ns", "a.txt"])).stdout, "a");
  } finally {
    await s.dispose();
  }
});

// ------------------------------------------------------------ trees

/** What `rsync -a` keeps of a tree: each entry's kind, mode, mtime, bytes or link target. */
async function treeShape(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (path: string, rel: string) => {
    for await (const e of Deno.readDir(path)) {
      const p = `${path}/${e.name}`;
      const info = await Deno.lstat(p);
      if (info.isDirectory) await walk(p, `${rel}${e.name}/`);
      else if (info.isSymlink) out.push(`${rel}${e.name} -> ${await Deno.readLink(p)}`);
      else {
        const mode = (info.mode! & 0o7777).toString(8);
        const body = await Deno.readTextFile(p);
        out.push(`${rel}${e.name} ${mode} ${info.mtime!.getTime()} ${JSON.stringify(body)}`);
      }
    }
  };
  await walk(dir, "");
  return out.sort();
}

Deno.test("capsa put --from / get --to keep file modes, modification times and symbolic links (never followed)", async () => {
  const s = await sandbox();
  try {
    await s.ok(["init", "store", "--kit", "store.kit"]);
    const tree = `${s.dir}/tree`;
    await Deno.mkdir(`${tree}/bin`, { recursive: true });
    await Deno.writeTextFile(`${tree}/bin/run.sh`, "#!/bin/sh\necho hi\n");
    await Deno.chmod(`${tree}/bin/run.sh`, 0o755);
    await Deno.utime(`${tree}/bin/run.sh`, 978_307_200, 978_307_200.123);
    await Deno.writeTextFile(`${tree}/secret.txt`, "s");
    await Deno.chmod(`${tree}/secret.txt`, 0o600);
    await Deno.utime(`${tree}/secret.txt`, 1_262_304_000, 1_262_304_000);
    const outside = `${s.dir}/outside.txt`;
    await Deno.writeTextFile(outside, "outside, untouched");
    await Deno.symlink("bin/run.sh", `${tree}/link-in`);
    await Deno.symlink("../outside.txt", `${tree}/link-out`);
    await Deno.symlink(outside, `${tree}/link-abs`);
    await Deno.symlink("nowhere", `${tree}/dangling`);
    const outsideBefore = await treeState(s.dir).then((t) =>
      t.find((l) => l.startsWith("outside"))
    );

    const put = await s.ok(["put", "store", "ns", "--from", "tree", "--json"]);
    assert.equal(put.stderr, "", "no file is skipped");
    // Four links, two files, two directories (the tree's own, `.`, and bin).
    assert.equal(JSON.parse(put.stdout).files, 8);
    const stat = JSON.parse((await s.ok(["stat", "store", "ns", "bin/run.sh", "--json"])).stdout);
    assert.deepEqual(stat.metadata, { "capsa.mode": "755", "capsa.mtime": "978307200123" });

    await s.ok(["get", "store", "ns", "--to", "restored"]);
    assert.deepEqual(await treeShape(`${s.dir}/restored`), await treeShape(tree));
    assert.deepEqual(
      await treeShape(`${s.dir}/restored`),
      [
        `dangling -> nowhere`,
        `link-abs -> ${outside}`,
        `link-in -> bin/run.sh`,
        `link-out -> ../outside.txt`,
        `bin/run.sh 755 978307200123 "#!/bin/sh\\necho hi\\n"`,
        `secret.txt 600 1262304000000 "s"`,
      ].sort(),
    );
    // Restoring again over the links writes the links, never through them.
    await s.ok(["get", "store", "ns", "--to", "restored"]);
    assert.equal(await Deno.readTextFile(outside), "outside, untouched");
    assert.equal(
      (await treeState(s.dir)).find((l) => l.startsWith("outside")),
      outsideBefore,
    );
  } finally {
    await s.dispose();
  }
});

Deno.test("capsa put --from skips files of unchanged size, mode and time unread (--checksum compares bytes, --force writes them) and reports new versions and new bytes", async () => {
  const s = await sandbox();
  try {
    await s.ok(["init", "store", "--kit", "store.kit"]);
    const tree = `${s.dir}/tree`;
    await Deno.mkdir(tree);
    for (let i = 0; i < 5; i++) {
      await Deno.writeFile(`${tree}/f${i}.bin`, crypto.getRandomValues(new Uint8Array(20_000)));
    }
    // Larger than the reader worker reads (64 KiB): opened, then streamed, on the main thread.
    await Deno.writeFile(`${tree}/large.bin`, randomBytes(200_000));
    await Deno.symlink("f0.bin", `${tree}/link`);
    const put = async (...extra: string[]) =>
      JSON.parse((await s.ok(["put", "store", "ns", "--from", "tree", "--json", ...extra])).stdout);
    const first = await put();
    // Six files, a link and the tree's own directory.
    assert.deepEqual([first.files, first.newVersions, first.unchanged], [8, 8, 0]);
    assert.ok(first.newBytes >= 300_000, `new bytes ${first.newBytes}`);

    const again = await put();
    assert.deepEqual([again.files, again.newVersions, again.unchanged, again.newBytes], [
      8,
      0,
      8,
      0,
    ]);
    const versions = JSON.parse(
      (await s.ok(["stat", "store", "ns", "f1.bin", "--versions", "--json"])).stdout,
    );
    assert.equal(versions.versions.length, 1, "no second version of an unchanged file");

    // Same bytes, new time: a new version (its metadata changed), but no new bytes.
    await Deno.utime(`${tree}/f1.bin`, 1_000_000, 1_000_000);
    // Same size and time, other bytes: taken as unchanged, unread (as restic and rsync do);
    // --checksum reads and hashes them, and stores new versions.
    const sameSizeAndTime = async (name: string, size: number) => {
      const before = await Deno.stat(`${tree}/${name}`);
      await Deno.writeFile(`${tree}/${name}`, randomBytes(size));
      await Deno.utime(`${tree}/${name}`, before.atime!, before.mtime!);
    };
    await sameSizeAndTime("f2.bin", 20_000);
    await sameSizeAndTime("large.bin", 200_000);
    const third = await put();
    assert.deepEqual([third.newVersions, third.unchanged], [1, 7]);
    const checked = await put("--checksum");
    assert.deepEqual([checked.newVersions, checked.unchanged], [2, 6]);
    assert.ok(checked.newBytes >= 220_000, `new bytes ${checked.newBytes}`);
    // The large file's new bytes are its current version.
    await s.ok(["get", "store", "ns", "large.bin", "-o", "out.bin"]);
    assert.deepEqual(
      await Deno.readFile(`${s.dir}/out.bin`),
      await Deno.readFile(`${tree}/large.bin`),
    );
    const human = await s.ok(["put", "store", "ns", "--from", "tree"]);
    assert.match(human.stdout, /: 0 new versions \(0 B\), 8 unchanged, 0 B new in the store/);
    const forced = await put("--force");
    assert.deepEqual([forced.newVersions, forced.unchanged], [8, 0]);
    assert.ok(forced.newBytes < 20_000, `deduplicated: ${forced.newBytes} new bytes`);
  } finally {
    await s.dispose();
  }
});

Deno.test("Ctrl-C during capsa put --from says what was stored; running it again completes it", async () => {
  const s = await sandbox();
  try {
    await s.ok(["init", "store", "--kit", "store.kit"]);
    const tree = `${s.dir}/tree`;
    await Deno.mkdir(tree);
    const count = 1500;
    for (let i = 0; i < count; i++) {
      await Deno.writeFile(
        `${tree}/f${String(i).padStart(4, "0")}.bin`,
        crypto.getRandomValues(new Uint8Array(40_000)),
      );
    }
    assert.equal(await pathExists(`${s.dir}/store/packs`), false, "no pack before the put starts");
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...PROCESS_FLAGS,
        CLI,
        "put",
        "store",
        "ns",
        "--from",
        "tree",
        "--parallelism",
        "2",
      ],
      cwd: s.dir,
      env: { NO_COLOR: "1", ...s.env },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const output = child.output();
    // Interrupt once packs are being written.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const packs = await Array.fromAsync(Deno.readDir(`${s.dir}/store`)).then(
        (es) => es.some((e) => e.name === "packs"),
      );
      if (packs || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill("SIGINT");
    const r = await output;
    const stderr = new TextDecoder().decode(r.stderr);
    assert.equal(r.code, 1, stderr);
    const m =
      /capsa: aborted: put stopped by Ctrl-C after (\d+) of 1501 files: (\d+) new versions .*run the same command again to store the rest/
        .exec(stderr);
    assert.ok(m, stderr);
    const stored = Number(m[2]);
    assert.ok(stored > 0 && stored < count, `stored ${stored}`);
    const listed = (await s.ok(["ls", "store", "ns"])).stdout.trim().split("\n").filter((l) => l);
    assert.equal(listed.length, stored, "what the message says was stored is there");

    const rerun = JSON.parse(
      (await s.ok(["put", "store", "ns", "--from", "tree", "--json"])).stdout,
    );
    // The files and the tree's own directory (`.`).
    assert.deepEqual([rerun.unchanged, rerun.newVersions], [stored, count + 1 - stored]);
    const all = (await s.ok(["ls", "store", "ns"])).stdout.trim().split("\n");
    assert.equal(all.length, count + 1);
  } finally {
    await s.dispose();
  }
});

/** `n` random bytes (`crypto.getRandomValues` gives at most 64 KiB at once). */
function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let at = 0; at < n; at += 65536) {
    crypto.getRandomValues(b.subarray(at, Math.min(n, at + 65536)));
  }
  return b;
}
