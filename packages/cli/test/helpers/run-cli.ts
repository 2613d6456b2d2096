// Runs the CLI as a child process (the real bin, real argv, real exit code), or in-process through `run`.

import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { run } from '../../src/cli.ts';

export const BIN = fileURLToPath(new URL('../../bin/bulwark.js', import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  stdin?: string;
  /** Called with each stdout chunk; for tests that react to output (telemetry --follow). */
  onStdout?: (text: string, child: ChildProcess) => void;
  /** Called with all stderr so far, on each chunk. */
  onStderr?: (text: string) => void;
  timeoutMs?: number;
}

/** A clean environment: only what the test passes, plus PATH and a HOME that is not the real one. */
export function cliEnv(
  home: string,
  extra: Record<string, string | undefined> = {},
): Record<string, string | undefined> {
  return { PATH: process.env.PATH, HOME: home, BULWARK_CONFIG_DIR: `${home}/.config/bulwark`, ...extra };
}

export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: options.env ?? {},
      cwd: options.cwd ?? process.cwd(),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      options.onStdout?.(stdout, child);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      options.onStderr?.(stderr);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(options.stdin ?? '');
  });
}

/** Same contract, in-process: faster for usage errors and help. */
export async function runInProcess(
  args: readonly string[],
  options: { env?: Record<string, string | undefined>; cwd?: string; stdin?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  let out = '';
  let err = '';
  // Writables whose write completes synchronously: all output is collected when `run` resolves.
  const stdout = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString('utf8');
      cb();
    },
  });
  const stderr = new Writable({
    write(chunk: Buffer, _enc, cb) {
      err += chunk.toString('utf8');
      cb();
    },
  });
  const code = await run(args, {
    stdout,
    stderr,
    stdin: Readable.from([options.stdin ?? '']),
    env: options.env ?? {},
    cwd: options.cwd ?? process.cwd(),
    signal: new AbortController().signal,
    catchInterrupts: () => {},
  });
  return { code, stdout: out, stderr: err };
}
