#include "common/job/task_request.h"

#include "common/dedup/keys.h"

namespace distillery {

int InitialSamples(const v1::JobSpec& spec) {
  return spec.until_correct() > 0 ? spec.until_correct() : spec.samples();
}

int PassingAnswers(const v1::JobSpec& spec) {
  return spec.until_correct() > 0 ? spec.until_correct() : 1;
}

v1::SamplingParams TaskParams(const v1::JobSpec& spec,
                              const v1::SamplingParams& prompt, int sample) {
  v1::SamplingParams params = spec.params();
  if (prompt.max_tokens() > 0) params.set_max_tokens(prompt.max_tokens());
  if (prompt.has_temperature()) params.set_temperature(prompt.temperature());
  if (sample > 0) params.set_seed(params.seed() + sample);
  return params;
}

std::string TaskRequestKey(
    const TeacherProfile& teacher, const v1::JobSpec& spec,
    const google::protobuf::RepeatedPtrField<v1::ChatMessage>& messages,
    const v1::SamplingParams& prompt_params, int sample) {
  const v1::SamplingParams params = TaskParams(spec, prompt_params, sample);
  // The seed carries the sample: the index joins the key only for a
  // request without one (sample 0 of an unseeded job), where it is 0.
  return RequestKey(teacher, spec.model(), messages, params,
                    params.has_seed() ? 0 : sample);
}

TeacherRequest ToTeacherRequest(
    const std::string& model,
    const google::protobuf::RepeatedPtrField<v1::ChatMessage>& messages,
    const v1::SamplingParams& params) {
  TeacherRequest request;
  request.model = model;
  for (const v1::ChatMessage& m : messages) {
    request.messages.push_back(ChatMessage{m.role(), m.content()});
  }
  request.params.max_tokens = params.max_tokens();
  if (params.has_temperature()) request.params.temperature = params.temperature();
  if (params.has_top_p()) request.params.top_p = params.top_p();
  if (params.has_seed()) request.params.seed = params.seed();
  request.params.stop.assign(params.stop().begin(), params.stop().end());
  return request;
}

}  // namespace distillery
