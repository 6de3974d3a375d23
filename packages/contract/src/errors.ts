// The error catalogue: every code the service answers with or fails a job with, closed. Each code has its HTTP
// status (null: only a failed job's `error.code`, never an HTTP answer), whether it is permanent (the same request
// or job fails the same way when retried: fix the input first) and what it means. Every error body is
// {"error": {"code", "message", "details"?}}; a failed job's record holds {"code", "message"}.
// No TypeBox here: the dashboard and the CLI read this file as it is.

export interface ErrorSpec {
  /** The HTTP status it is answered with; null where it only ends a job. */
  readonly status: number | null;
  /** Retrying the same request or job fails the same way. */
  readonly permanent: boolean;
  /** One line: what it means. */
  readonly meaning: string;
}

const spec = (status: number | null, permanent: boolean, meaning: string): ErrorSpec => ({ status, permanent, meaning });

export const ERRORS = {
  // Requests
  VALIDATION_FAILED: spec(400, true, 'a parameter, query or body field is missing, unknown or out of range; details name the field'),
  INVALID_CONFIG: spec(400, true, 'the training config is well-formed but cannot be trained as asked: with this backbone or method, or within the memory and time a job may take'),
  UNKNOWN_BACKBONE: spec(400, true, 'config.backbone names no backbone; GET /v1/backbones lists them'),
  INVALID_ARCHIVE: spec(400, true, 'the upload is empty, or not a zip, tar or tar.gz archive, or a malformed one'),
  UNSAFE_PATH: spec(400, true, 'an archive entry is a link or its path leaves the archive (absolute, ..)'),
  INVALID_LAYOUT: spec(400, true, 'the archive is not <class>/<image> or <split>/<class>/<image> with split train, validation or test'),
  INVALID_CLASS_NAME: spec(400, true, 'a class folder name is empty, too long or holds characters a label may not'),
  EMPTY_CLASS: spec(400, true, 'a train class has no usable image'),
  NO_IMAGES: spec(400, true, 'the archive holds no usable JPEG, PNG or WebP image'),
  TOO_FEW_CLASSES: spec(400, true, 'fewer than two classes to train on: in an upload, in a job\'s dataset or in its training split'),
  INVALID_IMAGE: spec(400, true, 'an image sent to /predict or /explain is not a decodable JPEG, PNG or WebP image'),
  UNSUPPORTED_MEDIA_TYPE: spec(415, true, 'the Content-Type is not one this endpoint takes'),
  PAYLOAD_TOO_LARGE: spec(413, true, 'the request body is larger than the configured limit'),
  ENTRY_TOO_LARGE: spec(413, true, 'one file in the archive is larger than the per-file limit'),
  TOO_MANY_ENTRIES: spec(413, true, 'the archive holds more entries than the limit'),
  ARCHIVE_TOO_LARGE: spec(413, true, 'the images in the archive hold more bytes than the limit'),
  COMPRESSION_RATIO_EXCEEDED: spec(413, true, 'an archive entry expands more than the compression-ratio limit (a zip bomb)'),
  IMAGE_TOO_LARGE: spec(413, true, 'an image has more pixels than the limit'),
  TOO_MANY_IMAGES: spec(413, true, 'a /predict request holds more images than the limit'),
  STORAGE_QUOTA_EXCEEDED: spec(413, true, "the tenant's datasets would take more storage than its quota; delete a dataset first"),
  UNAUTHORIZED: spec(401, true, 'the API key is missing or wrong'),
  IMPORT_NOT_ALLOWED: spec(403, true, 'the S3 source is not among the import sources the operator allows for this tenant'),
  NOT_FOUND: spec(404, true, 'no route answers this method and path'),
  DATASET_NOT_FOUND: spec(404, true, 'no dataset of the tenant has this id (a job: its dataset was deleted)'),
  JOB_NOT_FOUND: spec(404, true, 'no job of the tenant has this id'),
  MODEL_NOT_FOUND: spec(404, true, 'no model of the tenant has this id'),
  ARTIFACT_NOT_FOUND: spec(404, true, 'the model has no file of this name'),
  IMAGE_NOT_FOUND: spec(404, true, 'the dataset has no image of this id'),
  HEALTH_NOT_AVAILABLE: spec(404, true, 'the dataset was uploaded before health reports existed'),
  BACKBONE_NOT_FOUND: spec(404, true, 'no backbone of this name, or it cannot be built'),
  DATASET_IN_USE: spec(409, false, 'a queued or running job uses the dataset; cancel it or wait for it first'),
  DATASET_NAME_TAKEN: spec(409, true, 'a dataset of this name exists; choose another name or delete it first'),
  JOB_FINISHED: spec(409, true, 'the job has already succeeded, failed or been cancelled'),
  JOB_NOT_SUCCEEDED: spec(409, false, 'the job has not succeeded (yet): it has no evaluated images'),
  LABEL_ISSUES_NOT_AVAILABLE: spec(409, true, 'the job looked for no label issues: trained from scratch, with end-to-end augmentation, or with config.labelIssues false'),
  RATE_LIMITED: spec(429, false, 'too many requests or failed keys in the last minute, or too many uploads, streams or predictions of the tenant at once; retry later'),
  TENANT_QUOTA_EXCEEDED: spec(429, false, 'the tenant has as many queued and running jobs as it may; wait for one to finish or cancel one'),
  ABORTED: spec(499, false, 'the work stopped before it finished: the client went away, or the job was cancelled or shut down'),
  INTERNAL: spec(500, false, 'the server failed; see its log'),
  STORAGE_FAILED: spec(500, false, 'storing an image of the upload failed'),
  INGEST_FAILED: spec(500, false, 'reading the upload failed on the server side'),
  SERVICE_UNAVAILABLE: spec(503, false, 'Redis or S3 does not answer; retry shortly (GET /readyz says which)'),

  // Jobs: a failed job's error.code
  DATASET_CORRUPT: spec(null, true, "the dataset is incomplete in storage (its image index is missing); upload it again"),
  EMPTY_TRAINING_SET: spec(null, true, 'none of the training images can be read'),
  INVALID_LABEL: spec(null, true, 'an image carries a label outside the dataset\'s classes'),
  INVALID_INPUT_SIZE: spec(null, true, 'the input size is too small for the backbone or network'),
  INVALID_FINE_TUNING_LAYER: spec(null, true, 'fine-tuning cannot start at the layer asked for'),
  LAYER_NOT_FOUND: spec(null, true, 'the backbone has no layer of the name asked for'),
  INVALID_MODEL: spec(null, true, 'the backbone cannot be split into a base and a head'),
  INVALID_KERAS_WEIGHTS: spec(null, true, 'a backbone weight file is not the Keras HDF5 file it should be'),
  BACKBONE_WEIGHTS_UNAVAILABLE: spec(null, false, "the backbone's pretrained weights cannot be read from their source"),
  BACKEND_UNAVAILABLE: spec(null, true, 'no TensorFlow.js backend (or not the one configured) can start on the worker'),
  INVALID_BACKEND: spec(null, true, 'the worker is configured with an unknown TensorFlow.js backend or setting'),
  ONNX_RUNTIME_UNAVAILABLE: spec(null, false, 'the frozen base cannot run on ONNX Runtime on the worker'),
  TRAINING_KERNEL_MISSING: spec(null, true, 'the backend lacks a kernel that training these layers needs'),
  IMAGE_DECODE_FAILED: spec(null, true, 'an image of the dataset cannot be decoded'),
  UNSUPPORTED_LAYER: spec(null, true, 'a layer of the model has no ONNX equivalent'),
  TIME_LIMIT_EXCEEDED: spec(null, true, 'the job ran longer than its time limit'),
  STORAGE_UNAVAILABLE: spec(null, true, 'object storage stayed unreachable longer than the outage tolerance'),
  REDIS_UNAVAILABLE: spec(null, true, 'Redis stayed unreachable longer than the outage tolerance'),
  BATCHER_CLOSED: spec(null, false, 'the inference batcher was closed while images waited in it (the service is stopping)'),
  INVALID_JOB_PAYLOAD: spec(null, true, 'the queued job cannot be read by this worker (queued by another version of Graft, or damaged); submit it again'),
  CHILD_EXITED: spec(null, false, 'the training process exited unexpectedly (killed, out of memory)'),
  TRAINING_FAILED: spec(null, false, 'training stopped on an error that has no code of its own; see the message'),
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;
export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];

/** Codes answered over HTTP with `status`. */
export type HttpErrorCode = { [C in ErrorCode]: (typeof ERRORS)[C]['status'] extends number ? C : never }[ErrorCode];

export const isErrorCode = (code: unknown): code is ErrorCode => typeof code === 'string' && Object.hasOwn(ERRORS, code);

/** The HTTP status of a code; 500 for a code that only ends jobs. */
export const statusOf = (code: ErrorCode): number => ERRORS[code].status ?? 500;
