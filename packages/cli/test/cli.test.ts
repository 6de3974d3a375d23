// The `graft` command as a user runs it: a child process against the real API and worker (themselves processes),
// a real Redis and S3-protocol server; push a folder, train and follow, predict, pull, cancel with Ctrl-C.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { configEnv, testConfig, uniqueName } from '../../../test/support/services';
import sharp from 'sharp';
import { patternDataset, sceneImage } from '../../../test/support/images';
import { root, runService, startApi, waitFor, type Service } from '../../../test/support/processes';

const KEY = 'cli-test-key-0123456789';
const BIN = path.join(root, 'packages/cli/bin/graft.js');
const QUICK = {
  method: 'feature_extraction',
  backbone: 'mobilenet_v1_0.25_224',
  inputSize: 96,
  augmentation: { copies: 1 },
  featureExtraction: { epochs: 5, learningRate: 0.001 },
  earlyStopping: false,
};
const LONG = {
  method: 'fine_tuning',
  backbone: 'mobilenet_v1_0.25_224',
  inputSize: 96,
  augmentation: { copies: 1 },
  featureExtraction: { epochs: 500, learningRate: 0.00005 },
  fineTuning: { epochs: 100 },
  earlyStopping: false,
};

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A running `graft` process whose output is collected as it comes. */
interface Live {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  done: Promise<Run>;
}

describe('graft CLI', () => {
  let api: Service & { url: string };
  let worker: Service;
  let dir: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    const serviceEnv = { ...configEnv(testConfig()), GRAFT_API_KEYS: `cli:${KEY}` };
    api = await startApi(serviceEnv);
    worker = runService('services/worker/src/main.ts', serviceEnv);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-cli-test-'));
    // A folder as a user has one: <split>/<class>/<image>, plus a stray file and a hidden one.
    for (const e of await patternDataset({ train: 16, validation: 6, test: 6 }, 11)) {
      const base = e.path.startsWith('test/') ? path.join(dir, 'held-out') : path.join(dir, 'patterns');
      const file = path.join(base, e.path.replace(/^test\//, ''));
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, e.data);
    }
    fs.writeFileSync(path.join(dir, 'patterns', 'README.txt'), 'two kinds of patterns\n');
    fs.writeFileSync(path.join(dir, 'patterns', 'train', '.DS_Store'), 'junk');
    env = { GRAFT_URL: api.url, GRAFT_API_KEY: KEY, NO_COLOR: '1' };
  });
  afterAll(async () => {
    await Promise.all([api?.stop(), worker?.stop()]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const start = (args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): Live => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: opts.cwd ?? dir,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir(), ...env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const done = new Promise<Run>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
    return { child, stdout: () => stdout, stderr: () => stderr, done };
  };
  const graft = (args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}) => {
    const live = start(args, opts);
    live.child.stdin!.end();
    return live.done;
  };
  const logs = (r: Run) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}\nworker:\n${worker.output().slice(-2000)}`;

  let datasetId: string;
  let modelId: string;
  const jobIdOf = async (model: string) => JSON.parse((await graft(['models', 'show', model, '--json'])).stdout).jobId as string;

  it('pushes a folder, zipped on the fly, and lists and shows the dataset', async () => {
    const r = await graft(['datasets', 'push', path.join(dir, 'patterns')]);
    expect(r.code, logs(r)).toBe(0);
    // 44 images + README.txt; the hidden file stays home.
    expect(r.stderr).toContain('zipping 45 files');
    expect(r.stderr).toMatch(/uploading patterns \d+(\.\d)? KiB/);
    datasetId = /\b(ds_[a-z0-9]+)\b/.exec(r.stdout)![1]!;
    expect(r.stdout).toMatch(/name\s+patterns/);
    expect(r.stdout).toMatch(/dots\s+16\s+6/);
    expect(r.stdout).toMatch(/stripes\s+16\s+6/);
    expect(r.stdout).toContain('graft train patterns --follow');
    // Under npx the hints say how the user runs the command.
    const again = await graft(['datasets', 'push', path.join(dir, 'patterns')], { env: { npm_command: 'exec' } });
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`error DATASET_NAME_TAKEN: a dataset named 'patterns' exists (${datasetId}); push with --name <another>, or remove it first: npx graft datasets rm ${datasetId}\n`);

    const ls = await graft(['datasets', 'ls', '--json']);
    expect(ls.code).toBe(0);
    const list = JSON.parse(ls.stdout);
    expect(list.items.map((d: any) => d.id)).toContain(datasetId);
    const show = JSON.parse((await graft(['datasets', 'show', 'patterns', '--json'])).stdout);
    expect(show.id).toBe(datasetId);
    expect(show.splits).toEqual({ train: { dots: 16, stripes: 16 }, validation: { dots: 6, stripes: 6 } });
    const health = await graft(['datasets', 'health', 'patterns', '--json']);
    expect(health.code).toBe(0);
    expect(JSON.parse(health.stdout).summary).toEqual(show.health);
    expect(show.health.leakagePairs).toBe(0);
    const table = await graft(['datasets', 'ls']);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+NAME\s+CLASSES\s+IMAGES/);
    expect(table.stdout).toMatch(new RegExp(`${datasetId}\\s+patterns\\s+2\\s+44`));
  });

  it('trains with --follow, showing every epoch, and ends with the outcome and the model id', async () => {
    const r = await graft(['train', 'patterns', '--config', JSON.stringify(QUICK), '--follow']);
    expect(r.code, logs(r)).toBe(0);
    const jobId = /\b(job_[a-z0-9]+)\b/.exec(r.stdout)![1]!;
    expect(r.stdout.split('\n')[0]).toBe(`${jobId}: feature extraction on patterns (${datasetId}), mobilenet_v1_0.25_224 @96px`);
    // Plain lines when stderr is not a terminal: the phases, one line per epoch, the end.
    expect(r.stderr).toContain(`${jobId} running`);
    expect(r.stderr).toContain(`${jobId} training the head`);
    for (let e = 1; e <= 5; e++) {
      expect(r.stderr).toMatch(new RegExp(`training head epoch ${e}/5  loss \\d+\\.\\d{4}  acc \\d\\.\\d{4}  val_loss \\d+\\.\\d{4}  val_acc \\d\\.\\d{4}`));
    }
    expect(r.stderr).toMatch(/progress \d+%/);
    expect(r.stderr.trim().split('\n').at(-1)).toBe(`${jobId} succeeded`);
    expect(r.stdout).toMatch(new RegExp(`${jobId} succeeded in \\d+`));
    expect(r.stdout).toMatch(/validation: accuracy \d+\.\d%/);
    modelId = /model (mdl_[a-z0-9]+)/.exec(r.stdout)![1]!;
    expect(r.stdout).toContain(`graft predict ${modelId}`);

    const show = await graft(['jobs', 'show', jobId]);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/state\s+succeeded/);
    expect(show.stdout).toMatch(/training the head\s+5\s+\d\.\d{4}/);
    const ls = JSON.parse((await graft(['jobs', 'ls', '--state', 'succeeded', '--json'])).stdout);
    expect(ls.items.map((j: any) => j.id)).toContain(jobId);
    // Following a finished job prints its outcome at once.
    const again = await graft(['jobs', 'show', jobId, '--follow']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`model ${modelId}`);

    // Its likely label errors: a table, or a line saying there are none, as the API's answer has them.
    const issues = JSON.parse((await graft(['jobs', 'label-issues', jobId, '--json'])).stdout);
    expect(issues.scored.train).toBeGreaterThan(0);
    const text = await graft(['jobs', 'label-issues', jobId]);
    expect(text.code).toBe(0);
    if (issues.items.length) {
      expect(text.stdout.split('\n')[0]).toMatch(/^#\s+SCORE\s+LABEL\s+SUGGESTED\s+SPLIT\s+PATH/);
      expect(text.stdout).toContain(issues.items[0].path);
    } else {
      expect(text.stdout).toContain(`no likely label errors among the ${issues.scored.train + issues.scored.validation} images scored`);
    }
  });

  it('predicts held-out images into a table of labels and probabilities', async () => {
    const r = await graft(['predict', modelId, 'held-out', '--top-k', '2']);
    expect(r.code, logs(r)).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^FILE\s+LABEL\s+PROBABILITY\s+TOP 2\s+OOD$/);
    const rows = lines
      .slice(1)
      .map((l) => /^(\S+)\s+(dots|stripes)\s+(\d+\.\d)%\s+(dots|stripes) (\d+\.\d)%, (dots|stripes) (\d+\.\d)%\s+\d\.\d{3}( none of its classes\?)?$/.exec(l));
    expect(rows).toHaveLength(12);
    expect(rows.every(Boolean), r.stdout).toBe(true);
    let right = 0;
    for (const m of rows) {
      expect(m![1]).toMatch(/^held-out\/(dots|stripes)\/\d+\.jpg$/);
      expect(Number(m![3])).toBeGreaterThanOrEqual(50);
      expect(Number(m![5]) + Number(m![7])).toBeCloseTo(100, 0);
      if (m![1]!.includes(`/${m![2]}/`)) right++;
    }
    expect(right / rows.length).toBeGreaterThanOrEqual(0.75);

    const json = JSON.parse((await graft(['predict', modelId, 'held-out/dots/0.jpg', 'held-out/stripes/0.jpg', '--json', '-k', '1'])).stdout);
    expect(json.results.map((x: any) => x.file)).toEqual(['held-out/dots/0.jpg', 'held-out/stripes/0.jpg']);
    expect(json.results[0].predictions).toHaveLength(1);

    // A model is also named by the job that trained it, or by its dataset (its newest model).
    for (const ref of [await jobIdOf(modelId), 'patterns', datasetId]) {
      const byRef = JSON.parse((await graft(['predict', ref, 'held-out/dots/0.jpg', '--json'])).stdout);
      expect(byRef.modelId, ref).toBe(modelId);
    }
    const unknown = await graft(['predict', 'no-such-thing', 'held-out/dots/0.jpg']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^error MODEL_NOT_FOUND: no model, job or dataset 'no-such-thing'/);

    // An image the service cannot read is reported on its own row; the others are still classified.
    fs.writeFileSync(path.join(dir, 'broken.jpg'), 'not an image');
    const bad = await graft(['predict', modelId, 'held-out/dots/0.jpg', 'broken.jpg', 'held-out/stripes/0.jpg']);
    expect(bad.code).toBe(1);
    const badRows = bad.stdout.trim().split('\n').slice(1);
    expect(badRows).toHaveLength(3);
    expect(badRows[0]).toMatch(/^held-out\/dots\/0\.jpg\s+(dots|stripes)\s+\d+\.\d%/);
    expect(badRows[1]).toMatch(/^broken\.jpg\s+error: not a decodable JPEG, PNG or WebP image\s+-\s+-$/);
    expect(badRows[2]).toMatch(/^held-out\/stripes\/0\.jpg\s+(dots|stripes)\s+\d+\.\d%/);
    expect(bad.stderr.split('\n')[0]).toBe('1 of 3 images could not be classified');
  });

  it('marks images unlike the training images, and takes --ood-threshold and --tta flip', async () => {
    // Scenes of soft shapes: photos of none of the two classes.
    fs.mkdirSync(path.join(dir, 'scenes'), { recursive: true });
    for (let i = 0; i < 6; i++) fs.writeFileSync(path.join(dir, 'scenes', `${i}.jpg`), await sceneImage(900 + i));
    const threshold = (await (await fetch(`${api.url}/v1/models/${modelId}/artifacts/graft.json`, { headers: { authorization: `Bearer ${KEY}` } })).json())
      .outOfDistribution.threshold as number;
    const rowsOf = (out: string) =>
      out
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => {
          const m = /^(\S+)\s+(dots|stripes)\s+\d+\.\d%\s+(?:dots|stripes) \d+\.\d%\s+(\d\.\d{3})( none of its classes\?)?$/.exec(l);
          expect(m, l).not.toBeNull();
          return { file: m![1]!, score: Number(m![3]), flagged: !!m![4] };
        });

    const r = await graft(['predict', modelId, 'held-out', 'scenes', '-k', '1']);
    expect(r.code, logs(r)).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/^FILE\s+LABEL\s+PROBABILITY\s+TOP\s+OOD$/);
    const rows = rowsOf(r.stdout);
    expect(rows).toHaveLength(18);
    // A row is marked where its score is above the model's threshold, as the API flags it.
    const json = JSON.parse((await graft(['predict', modelId, 'held-out', 'scenes', '--json'])).stdout);
    rows.forEach((row, i) => {
      const ood = json.results[i].outOfDistribution;
      expect(row.score).toBeCloseTo(ood.score, 3);
      expect(row.flagged, row.file).toBe(ood.flagged);
      expect(ood.flagged).toBe(ood.score > threshold);
    });
    const heldOut = rows.filter((x) => x.file.startsWith('held-out/'));
    const scenes = rows.filter((x) => x.file.startsWith('scenes/'));
    expect(scenes.filter((x) => x.flagged).length, r.stdout).toBeGreaterThanOrEqual(5);
    expect(heldOut.filter((x) => x.flagged).length, r.stdout).toBeLessThanOrEqual(2);
    const flagged = rows.filter((x) => x.flagged).length;
    expect(r.stderr).toBe(
      `${flagged} of 18 images look like none of the model's classes (OOD score above ${threshold.toFixed(3)}, the model's threshold; --ood-threshold sets another)\n`,
    );

    // --ood-threshold replaces the model's threshold: at 0 every image is marked, at 2 none.
    const all = await graft(['predict', modelId, 'held-out', 'scenes', '-k', '1', '--ood-threshold', '0']);
    expect(rowsOf(all.stdout).every((x) => x.flagged)).toBe(true);
    expect(all.stderr).toBe("18 of 18 images look like none of the model's classes (OOD score above 0.000)\n");
    const none = await graft(['predict', modelId, 'held-out', 'scenes', '-k', '1', '--ood-threshold', '2']);
    expect(rowsOf(none.stdout).some((x) => x.flagged)).toBe(false);
    expect(none.stderr).toBe('');
    const outOfRange = await graft(['predict', modelId, 'scenes', '--ood-threshold', '3']);
    expect(outOfRange.code).toBe(1);
    expect(outOfRange.stderr).toBe("error INVALID_ARGUMENT: --ood-threshold must be a number from 0 to 2 (a distance between unit feature vectors), not '3'\n");

    // --tta flip: the service averages each image with its mirror image, as the API answers ?tta=flip.
    const scene = fs.readFileSync(path.join(dir, 'scenes', '0.jpg'));
    const first = async (args: string[]) => JSON.parse((await graft(['predict', modelId, 'scenes/0.jpg', '--json', ...args])).stdout).results[0];
    const [flipped, plain] = [await first(['--tta', 'flip']), await first([])];
    const byApi = await (
      await fetch(`${api.url}/v1/models/${modelId}/predict?tta=flip&topK=3`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'image/jpeg' },
        body: new Uint8Array(scene),
      })
    ).json();
    expect(flipped.predictions).toEqual(byApi.results[0].predictions);
    expect(flipped.outOfDistribution).toEqual(byApi.results[0].outOfDistribution);
    // The scene is not symmetric: the mean of it and its mirror image lies elsewhere in feature space.
    expect(Math.abs(flipped.outOfDistribution.score - plain.outOfDistribution.score)).toBeGreaterThan(1e-4);
    const wrongMode = await graft(['predict', modelId, 'scenes/0.jpg', '--tta', 'rotate']);
    expect(wrongMode.code).toBe(1);
    expect(wrongMode.stderr).toContain("argument 'rotate' is invalid. Allowed choices are flip.");
  });

  it('explains an image: the Grad-CAM overlay of its top class, or of the class asked for, written as a PNG', async () => {
    const image = 'held-out/stripes/0.jpg';
    const top = JSON.parse((await graft(['predict', modelId, image, '--json', '-k', '1'])).stdout).results[0].predictions[0];
    const r = await graft(['explain', modelId, image, '--out', 'overlays/stripes.png']);
    expect(r.code, logs(r)).toBe(0);
    expect(r.stdout).toBe(`${image}: ${top.label} ${(top.probability * 100).toFixed(1)}%; where the model looks for it: overlays/stripes.png\n`);
    // The file is the overlay the API draws for that image and class.
    const written = fs.readFileSync(path.join(dir, 'overlays', 'stripes.png'));
    const byApi = await (
      await fetch(`${api.url}/v1/models/${modelId}/explain?label=${top.label}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'image/jpeg' },
        body: new Uint8Array(fs.readFileSync(path.join(dir, image))),
      })
    ).json();
    expect(written.equals(Buffer.from(byApi.overlay.replace(/^data:image\/png;base64,/, ''), 'base64'))).toBe(true);
    const meta = await sharp(written).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 64, 64]);

    // Another class, named by the dataset; without --out the file is named for the image and the class.
    const other = top.label === 'dots' ? 'stripes' : 'dots';
    const asked = await graft(['explain', 'patterns', image, '--label', other, '--json']);
    expect(asked.code, logs(asked)).toBe(0);
    const ex = JSON.parse(asked.stdout);
    expect(ex).toMatchObject({ modelId, label: other, file: image, out: `0.${other}.png` });
    expect(ex.overlay).toBeUndefined();
    expect(ex.heatmap.values).toHaveLength(ex.heatmap.width * ex.heatmap.height);
    expect(ex.heatmap.values.every((v: number) => v >= 0 && v <= 1)).toBe(true);
    expect((await sharp(path.join(dir, `0.${other}.png`)).metadata()).format).toBe('png');

    const unknown = await graft(['explain', modelId, image, '--label', 'cats']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe("error VALIDATION_FAILED: label 'cats' is not one of the model's: dots, stripes\n");
    const missing = await graft(['explain', modelId, 'no-such.jpg']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("error INVALID_ARGUMENT: 'no-such.jpg' is not an image file\n");
  });

  it('refuses a folder that is not a dataset before uploading it', async () => {
    const one = path.join(dir, 'one-class');
    fs.mkdirSync(path.join(one, 'cats'), { recursive: true });
    fs.copyFileSync(path.join(dir, 'held-out', 'dots', '0.jpg'), path.join(one, 'cats', 'a.jpg'));
    const r = await graft(['datasets', 'push', one]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error INVALID_SOURCE: '.*one-class' has one class \(cats\) to train on; a classifier needs at least two class folders/);
    expect(r.stderr).not.toContain('uploading');
    const flat = path.join(dir, 'flat');
    fs.mkdirSync(flat);
    fs.copyFileSync(path.join(dir, 'held-out', 'dots', '0.jpg'), path.join(flat, 'a.jpg'));
    const f = await graft(['datasets', 'push', flat]);
    expect(f.code).toBe(1);
    expect(f.stderr).toMatch(/^error INVALID_SOURCE: '.*flat': images must be inside class folders/);
  });

  it('pulls every file of the model into a folder, the model named by its id or its job', async () => {
    const target = path.join(dir, 'pulled', 'model');
    // The job that trained it names the same model, as for predict and explain.
    const jobId = await jobIdOf(modelId);
    expect(JSON.parse((await graft(['models', 'show', jobId, '--json'])).stdout).id).toBe(modelId);
    const r = await graft(['models', 'pull', jobId, target]);
    expect(r.code, logs(r)).toBe(0);
    const files = fs.readdirSync(target).sort();
    expect(files).toEqual(expect.arrayContaining(['graft.json', 'model.json']));
    expect(files.some((f) => f.endsWith('.part'))).toBe(false);
    const graftJson = JSON.parse(fs.readFileSync(path.join(target, 'graft.json'), 'utf8'));
    expect(graftJson.labels).toEqual(['dots', 'stripes']);
    const modelJson = JSON.parse(fs.readFileSync(path.join(target, 'model.json'), 'utf8'));
    for (const group of modelJson.weightsManifest) for (const p of group.paths) expect(files).toContain(p);
    expect(r.stdout).toMatch(new RegExp(`pulled ${files.length} files \\(.+\\) into ${target.replace(/[/.]/g, '\\$&')}`));
    const listed = JSON.parse((await graft(['models', 'show', modelId, '--json'])).stdout);
    expect(listed.files.map((f: any) => f.name).sort()).toEqual(files);
    for (const f of listed.files) expect(fs.statSync(path.join(target, f.name)).size).toBe(f.bytes);
    const ls = await graft(['models', 'ls']);
    expect(ls.stdout).toMatch(new RegExp(`${modelId}\\s+dots, stripes\\s+mobilenet_v1_0.25_224\\s+96px`));
    // Deleting takes the model's own id only: a job or a dataset is refused before anything is asked of the service.
    const rm = await graft(['models', 'rm', jobId]);
    expect(rm.code).toBe(1);
    expect(rm.stderr).toMatch(new RegExp(`^error INVALID_ARGUMENT: '${jobId}' is not a model id: rm takes a model's own id \\(mdl_…\\)`));
    expect(JSON.parse((await graft(['models', 'show', modelId, '--json'])).stdout).id).toBe(modelId);
  });

  it('prints API errors as "error CODE: message" with exit code 1', async () => {
    const missing = await graft(['jobs', 'show', 'job_doesnotexist']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("error JOB_NOT_FOUND: job 'job_doesnotexist' does not exist\n");
    const wrongKey = await graft(['datasets', 'ls'], { env: { GRAFT_API_KEY: 'wrong-key-0123456789' } });
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr).toMatch(/^error UNAUTHORIZED: /);
    const unreachable = await graft(['datasets', 'ls', '--json'], { env: { GRAFT_API_KEY: 'wrong-key-0123456789', GRAFT_URL: 'http://127.0.0.1:9' } });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/^error CONNECTION_FAILED: cannot reach http:\/\/127\.0\.0\.1:9/);
    const flags = await graft(['--url', api.url, '--key', KEY, 'datasets', 'ls', '--json'], { env: { GRAFT_API_KEY: 'wrong', GRAFT_URL: 'http://127.0.0.1:9' } });
    expect(flags.code).toBe(0);
    expect(JSON.parse(flags.stdout).items.length).toBeGreaterThan(0);
    const badConfig = await graft(['train', 'patterns', '--config', '{"head":{"units":-1}}']);
    expect(badConfig.code).toBe(1);
    expect(badConfig.stderr).toMatch(/^error VALIDATION_FAILED: .*config\.head\.units/);
    const notThere = await graft(['datasets', 'push', path.join(dir, 'nope')]);
    expect(notThere.code).toBe(1);
    expect(notThere.stderr).toMatch(/^error INVALID_SOURCE: '.*nope' does not exist/);
  });

  const waitOutput = (live: Live, what: RegExp, ms: number) =>
    waitFor(`${what} in the output`, async () => what.test(live.stderr()) || live.child.exitCode !== null, ms, 100).then(() => {
      if (!what.test(live.stderr())) throw new Error(`exited without ${what}:\n${live.stdout()}\n${live.stderr()}`);
    });

  it('on Ctrl-C asks whether to cancel the job: y cancels it', async () => {
    const live = start(['train', 'patterns', '--config', JSON.stringify(LONG), '--follow']);
    await waitOutput(live, /training head epoch 2\/500/, 120_000);
    live.child.kill('SIGINT');
    await waitOutput(live, /Cancel job job_[a-z0-9]+\? \[y\/N\] $/, 10_000);
    live.child.stdin!.write('y\n');
    const r = await live.done;
    expect(r.code, logs(r)).toBe(130);
    const jobId = /\b(job_[a-z0-9]+)\b/.exec(r.stdout)![1]!;
    expect(r.stderr).toContain(`cancelling ${jobId}`);
    expect(r.stdout).toMatch(new RegExp(`${jobId} cancelled`));
    expect(JSON.parse((await graft(['jobs', 'show', jobId, '--json'])).stdout).state).toBe('cancelled');
  });

  it('on Ctrl-C answered no, stops following and leaves the job running', async () => {
    const live = start(['train', 'patterns', '--config', JSON.stringify(LONG), '--follow']);
    await waitOutput(live, /training head epoch 2\/500/, 120_000);
    live.child.kill('SIGINT');
    await waitOutput(live, /\[y\/N\] $/, 10_000);
    live.child.stdin!.write('\n');
    const r = await live.done;
    expect(r.code, logs(r)).toBe(0);
    const jobId = /\b(job_[a-z0-9]+)\b/.exec(r.stdout)![1]!;
    expect(r.stderr).toContain(`stopped following; ${jobId} is still running`);
    expect(JSON.parse((await graft(['jobs', 'show', jobId, '--json'])).stdout).state).toBe('running');
    const cancel = await graft(['jobs', 'cancel', jobId]);
    expect(cancel.code, logs(cancel)).toBe(0);
    expect(cancel.stdout).toMatch(new RegExp(`${jobId}: cancellation requested|${jobId} cancelled`));
    await waitFor('the job to stop', async () => JSON.parse((await graft(['jobs', 'show', jobId, '--json'])).stdout).state === 'cancelled', 20_000, 500);
  });

  it('runs as `npx graft` from the repository root and from a folder inside it, and by path from anywhere', async () => {
    for (const cwd of [root, path.join(root, 'services/api')]) {
      const r = spawnSync('npx', ['graft', 'datasets', 'ls', '--json'], { cwd, env: { ...process.env, ...env }, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).items.map((d: any) => d.id)).toContain(datasetId);
    }
    const byPath = spawnSync(path.join(root, 'node_modules/.bin/graft'), ['--help'], { cwd: os.tmpdir(), encoding: 'utf8' });
    expect(byPath.status, byPath.stderr).toBe(0);
    expect(byPath.stdout).toContain('Usage: graft');
  });

  const hasTmux = spawnSync('tmux', ['-V']).status === 0;

  it.skipIf(!hasTmux)('draws live bars in a terminal (tmux)', async () => {
    const socket = uniqueName('graft-cli');
    const config = { ...QUICK, method: 'fine_tuning', featureExtraction: { epochs: 40, learningRate: 0.0005 }, fineTuning: { epochs: 6 } };
    const jobId = /\b(job_[a-z0-9]+)\b/.exec((await graft(['train', 'patterns', '--config', JSON.stringify(config)])).stdout)![1]!;
    const tmux = (...args: string[]) => execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
    tmux('new-session', '-d', '-s', 'graft', '-x', '120', '-y', '20', '-c', dir, `'${process.execPath}' '${BIN}' jobs show ${jobId} --follow; echo EXIT=$?; sleep 60`);
    try {
      const pane = () => tmux('capture-pane', '-p', '-t', 'graft');
      const mid = await waitFor('a bar mid-run', async () => {
        const p = pane();
        return /training head\s+█+░+ \d+\/40 epochs │ loss \d\.\d{3} acc \d\.\d{3} │ val loss \d\.\d{3} acc \d\.\d{3} │ ETA/.test(p) && p;
      }, 120_000, 100);
      expect(mid).toMatch(/^job\s+[█░]{24}\s+\d+% (training the head|extracting features|fine-tuning)/m);
      expect(mid).toMatch(/fine-tuning\s+░{24} 0\/6 epochs │ waiting/);
      const end = await waitFor('the end', async () => /EXIT=\d+/.test(pane()) && tmux('capture-pane', '-p', '-S', '-200', '-t', 'graft'), 120_000, 250);
      expect(end).toContain('EXIT=0');
      expect(end).toMatch(/^job\s+█{24} 100% succeeded/m);
      expect(end).toMatch(/training head\s+█{24} 40\/40 epochs │ .* │ done in/);
      expect(end).toMatch(/fine-tuning\s+█{24} 6\/6 epochs │ .* │ done in/);
      expect(end).toMatch(new RegExp(`${jobId} succeeded in`));
      // Each bar is drawn in place: one line per bar in the final screen.
      expect(end.match(/^\s*training head\s/gm)).toHaveLength(1);
      if (process.env.GRAFT_CLI_TMUX_CAPTURE) fs.writeFileSync(process.env.GRAFT_CLI_TMUX_CAPTURE, `--- mid-run\n${mid}\n--- end\n${end}`);
    } finally {
      try {
        tmux('kill-server');
      } catch {
        // already gone
      }
    }
  });
});
