// Maps container image names to local commands, since the node agent runs no containers.
//
// An image stands for an ENTRYPOINT and a CMD, as in a Dockerfile; Kubernetes' rules then apply
// (https://kubernetes.io/docs/tasks/inject-data-application/define-command-argument-container/):
// `command` replaces the entrypoint, `args` replaces the CMD, and `command` without `args` drops the CMD.

import { z } from 'zod';

/** What a mapped image runs. */
export const ImageEntrySchema = z.strictObject({
  /** Program and leading arguments, like a Dockerfile ENTRYPOINT; empty: `command` must be given. */
  entrypoint: z.array(z.string()).default([]),
  /** Default arguments, like a Dockerfile CMD. */
  cmd: z.array(z.string()).default([]),
  /** Working directory when the container sets none; default: the agent's. */
  workingDir: z.string().optional(),
  /** Extra environment, like a Dockerfile ENV (the pod's env wins). */
  env: z.record(z.string(), z.string()).default({}),
});
export type ImageEntry = z.infer<typeof ImageEntrySchema>;

/** The JSON of GMT_NODE_AGENT_IMAGES: image name → entry, or → entrypoint array as a shorthand. */
export const ImageMapSchema = z.record(
  z.string(),
  z.union([z.array(z.string()).transform((entrypoint) => ImageEntrySchema.parse({ entrypoint })), ImageEntrySchema]),
);
export type ImageMap = Readonly<Record<string, ImageEntry>>;

/** Images every agent knows: busybox-like shells that run `command`/`args` with the host's sh. */
export const DEFAULT_IMAGES: ImageMap = {
  'gmt-test/shell': { entrypoint: [], cmd: ['sh'], env: {} },
  busybox: { entrypoint: [], cmd: ['sh'], env: {} },
};

/** Parses GMT_NODE_AGENT_IMAGES (if set) on top of `base`; throws a readable error on bad JSON. */
export function parseImageMap(json: string | undefined, base: ImageMap = DEFAULT_IMAGES): ImageMap {
  if (json === undefined || json.trim() === '') return base;
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new Error(`GMT_NODE_AGENT_IMAGES is not JSON: ${String(err)}`, { cause: err });
  }
  return { ...base, ...ImageMapSchema.parse(raw) };
}

/** Candidate keys for an image reference, most specific first: as given, without digest/tag, without docker.io prefixes. */
export function imageKeys(image: string): string[] {
  const noDigest = image.split('@')[0] ?? image;
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  const repo = colon > slash ? noDigest.slice(0, colon) : noDigest;
  const keys = [image, noDigest, repo];
  for (const prefix of ['docker.io/library/', 'docker.io/', 'library/']) {
    if (repo.startsWith(prefix)) keys.push(repo.slice(prefix.length));
  }
  return [...new Set(keys)];
}

/** The entry for `image`, or undefined when the image is not mapped. */
export function lookupImage(map: ImageMap, image: string): ImageEntry | undefined {
  for (const key of imageKeys(image)) {
    const entry = map[key];
    if (entry !== undefined) return entry;
  }
  return undefined;
}

/** argv for a container per the Kubernetes command/args rules; empty when nothing to run. */
export function computeArgv(entry: ImageEntry, command: readonly string[] | undefined, args: readonly string[] | undefined): string[] {
  const hasCommand = command !== undefined && command.length > 0;
  const program = hasCommand ? command : entry.entrypoint;
  const rest = args !== undefined && args.length > 0 ? args : hasCommand ? [] : entry.cmd;
  return [...program, ...rest];
}
