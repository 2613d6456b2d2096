import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm, stat, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  configDir,
  loadLogin,
  MissingSettingError,
  removeLogin,
  resolveSettings,
  saveLogin,
} from '../src/config.ts';
import { CliError } from '../src/errors.ts';

let tmp: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'bulwark-cli-config-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('configDir', () => {
  it('prefers BULWARK_CONFIG_DIR, then an absolute XDG_CONFIG_HOME, then ~/.config', () => {
    assert.equal(configDir({ BULWARK_CONFIG_DIR: '/a/b', XDG_CONFIG_HOME: '/x', HOME: '/h' }), '/a/b');
    assert.equal(configDir({ XDG_CONFIG_HOME: '/x', HOME: '/h' }), '/x/bulwark');
    assert.equal(configDir({ XDG_CONFIG_HOME: 'relative', HOME: '/h' }), '/h/.config/bulwark');
    assert.equal(configDir({ BULWARK_CONFIG_DIR: '', HOME: '/h' }), '/h/.config/bulwark');
  });
});

describe('saveLogin / loadLogin', () => {
  it('creates the directory 0700 and the file 0600, and reads it back', async () => {
    const dir = join(tmp, 'fresh', 'bulwark');
    const env = { BULWARK_CONFIG_DIR: dir };
    const old = process.umask(0o022);
    try {
      const path = await saveLogin(env, { url: 'https://h:8443', token: 'secret', caFile: '/ca.pem' });
      assert.equal(path, join(dir, 'config.json'));
      assert.equal((await stat(dir)).mode & 0o777, 0o700);
      assert.equal((await stat(path)).mode & 0o777, 0o600);
    } finally {
      process.umask(old);
    }
    const loaded = await loadLogin(env);
    assert.deepEqual(loaded?.login, { url: 'https://h:8443', token: 'secret', caFile: '/ca.pem' });
    assert.equal(loaded?.warning, undefined);
  });

  it('replaces an existing, too-open file with a 0600 one and leaves no temp files', async () => {
    const dir = join(tmp, 'existing');
    await mkdir(dir, { mode: 0o755 });
    const path = join(dir, 'config.json');
    await writeFile(path, '{}', { mode: 0o644 });
    await chmod(path, 0o644);
    await saveLogin({ BULWARK_CONFIG_DIR: dir }, { url: 'https://h', token: 't2' });
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(await readFile(path, 'utf8')), { url: 'https://h', token: 't2' });
    const { readdir } = await import('node:fs/promises');
    assert.deepEqual(await readdir(dir), ['config.json']);
    // A directory the user made is left as it is.
    assert.equal((await stat(dir)).mode & 0o777, 0o755);
  });

  it('warns when the file is readable by others', async () => {
    const dir = join(tmp, 'loose');
    await saveLogin({ BULWARK_CONFIG_DIR: dir }, { url: 'https://h', token: 't' });
    await chmod(join(dir, 'config.json'), 0o644);
    const loaded = await loadLogin({ BULWARK_CONFIG_DIR: dir });
    assert.match(loaded?.warning ?? '', /readable by others .*chmod 600/);
  });

  it('returns undefined without a file; rejects malformed files', async () => {
    assert.equal(await loadLogin({ BULWARK_CONFIG_DIR: join(tmp, 'none') }), undefined);
    const bad: [string, string][] = [
      ['not json', '{url'],
      ['array', '[]'],
      ['no token', '{"url":"https://h"}'],
      ['token not a string', '{"url":"https://h","token":1}'],
      ['caFile not a string', '{"url":"https://h","token":"t","caFile":true}'],
      ['sso not an object', '{"url":"https://h","token":"t","sso":"yes"}'],
      [
        'sso without tokenId',
        '{"url":"https://h","token":"t","sso":{"expiresAt":null,"tenant":"d","account":"a"}}',
      ],
      [
        'sso expiresAt a number',
        '{"url":"https://h","token":"t","sso":{"tokenId":"i","expiresAt":1,"tenant":"d","account":"a"}}',
      ],
    ];
    for (const [name, text] of bad) {
      const dir = join(tmp, `bad-${name.replace(/\W/g, '')}`);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'config.json'), text, { mode: 0o600 });
      await assert.rejects(loadLogin({ BULWARK_CONFIG_DIR: dir }), CliError, name);
    }
  });

  it('keeps what a single sign-on saved (the token id to revoke, its end, tenant and account)', async () => {
    const env = { BULWARK_CONFIG_DIR: join(tmp, 'sso') };
    const sso = { tokenId: 'tid', expiresAt: '2026-05-01T12:00:00.000Z', tenant: 'default', account: 'a1' };
    await saveLogin(env, { url: 'https://h', token: 't', sso });
    assert.deepEqual((await loadLogin(env))?.login, { url: 'https://h', token: 't', sso });
  });

  it('removeLogin deletes the file and says whether there was one', async () => {
    const env = { BULWARK_CONFIG_DIR: join(tmp, 'rm') };
    await saveLogin(env, { url: 'https://h', token: 't' });
    assert.ok(await removeLogin(env));
    assert.equal(await removeLogin(env), undefined);
    assert.equal(await loadLogin(env), undefined);
  });
});

describe('resolveSettings', () => {
  const saved = { url: 'https://saved:8443', token: 'saved-token', caFile: '/saved-ca.pem' };

  it('flags win over environment, environment over the saved login', () => {
    const env = {
      BULWARK_URL: 'https://saved:8443',
      BULWARK_TOKEN: 'env-token',
      BULWARK_CA_FILE: '/env-ca.pem',
    };
    assert.deepEqual(resolveSettings({ flags: {}, env: {}, saved }), saved);
    assert.deepEqual(resolveSettings({ flags: {}, env, saved }), {
      url: 'https://saved:8443',
      token: 'env-token',
      caFile: '/env-ca.pem',
    });
    assert.deepEqual(
      resolveSettings({
        flags: { url: 'https://saved:8443/', token: 'flag-token', caFile: '/f.pem' },
        env,
        saved,
      }),
      { url: 'https://saved:8443/', token: 'flag-token', caFile: '/f.pem' },
    );
  });

  it('says a saved single sign-on has ended instead of sending its token; a token given explicitly still works', () => {
    const ended = {
      ...saved,
      sso: { tokenId: 'i', expiresAt: new Date(Date.now() - 1000).toISOString(), tenant: 'd', account: 'a' },
    };
    assert.throws(
      () => resolveSettings({ flags: {}, env: {}, saved: ended }),
      (err: unknown) =>
        err instanceof MissingSettingError && /ended at .*bulwark login --sso/.test(err.message),
    );
    assert.equal(resolveSettings({ flags: { token: 'f' }, env: {}, saved: ended }).token, 'f');
    const live = { ...ended, sso: { ...ended.sso, expiresAt: new Date(Date.now() + 60_000).toISOString() } };
    assert.equal(resolveSettings({ flags: {}, env: {}, saved: live }).token, 'saved-token');
  });

  it('never sends the saved token (or CA) to a different server', () => {
    assert.throws(
      () => resolveSettings({ flags: { url: 'https://elsewhere:8443' }, env: {}, saved }),
      (err: unknown) =>
        err instanceof MissingSettingError && /saved login is for https:\/\/saved:8443/.test(err.message),
    );
    assert.deepEqual(
      resolveSettings({ flags: { url: 'https://elsewhere:8443', token: 'x' }, env: {}, saved }),
      {
        url: 'https://elsewhere:8443',
        token: 'x',
      },
    );
  });

  it('explains what is missing', () => {
    assert.throws(() => resolveSettings({ flags: {}, env: {}, saved: undefined }), /no server URL/);
    assert.throws(
      () => resolveSettings({ flags: { url: 'https://h' }, env: {}, saved: undefined }),
      /no API token/,
    );
  });
});
