// Task request: the one definition of what a task asks its teacher and of
// the key its answer is stored under. Submission (the key it stores with
// each task), lease (the parameters sent) and commit (the parameters kept
// with the answer) all derive them here, so the request sent and its key
// cannot disagree.
//
// A job's sample k > 0 is sent with seed `seed + k` (seed 0 when the job
// sets none), so deterministic servers give distinct answers; sample 0 is
// sent exactly as asked. The key is made from the parameters as sent, not
// from the sample index: `--seed 5 --samples 2` and `--seed 6` send the
// same request for sample 1 and the first sample, and get the same key, so
// the second is answered from the cache. Sample-0 keys are those of key
// format v2 (dedup/keys.h) unchanged.
// Thread-safe (pure functions).
#ifndef DISTILLERY_COMMON_JOB_TASK_REQUEST_H_
#define DISTILLERY_COMMON_JOB_TASK_REQUEST_H_

#include <string>

#include "common/config/teachers.h"
#include "common/teacher/teacher.h"
#include "distillery/v1/types.pb.h"
#include "distillery/v1/worker_service.pb.h"

namespace distillery {

// The samples each prompt of a job with `spec` starts with: `samples`, or
// with adaptive sampling (until_correct > 0) until_correct, more following
// as answers are found wrong (services/coordinator: coordinator_verify.cc).
int InitialSamples(const v1::JobSpec& spec);

// The verified answers a prompt of `spec` needs to pass: until_correct, or
// 1 for a job with a fixed number of samples.
int PassingAnswers(const v1::JobSpec& spec);

// The sampling parameters sample `sample` of a job with `spec` sends, for
// a prompt whose own parameters (Prompt.params, Task.prompt_params: a row's
// max_tokens and temperature) are `prompt`: those override the job's.
v1::SamplingParams TaskParams(const v1::JobSpec& spec,
                              const v1::SamplingParams& prompt, int sample);

// What sample `sample` of `prompt` in a job with `spec` sends, into the
// request fields of `*out` (model, messages, params, tools, JSON schema):
// online leases and batch steps are both filled here.
void FillTaskRequest(const v1::JobSpec& spec, const v1::Prompt& prompt,
                     int sample, v1::LeasedTask* out);

// The TeacherRequest `task` sends, as a Teacher or a BatchApi takes it.
// Online leases, batch lines in the coordinator and batch creates in the
// worker all build it here.
TeacherRequest ToTeacherRequest(const v1::LeasedTask& task);

// The request key of sample `sample` of `prompt` (the system prompt already
// in its messages; its own parameters, tools and tool choice) in a job
// with `spec`, sent to `teacher`.
std::string TaskRequestKey(const TeacherProfile& teacher,
                           const v1::JobSpec& spec, const v1::Prompt& prompt,
                           int sample);

}  // namespace distillery

#endif  // DISTILLERY_COMMON_JOB_TASK_REQUEST_H_
