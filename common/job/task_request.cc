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

std::string TaskRequestKey(const TeacherProfile& teacher,
                           const v1::JobSpec& spec, const v1::Prompt& prompt,
                           int sample) {
  const v1::SamplingParams params = TaskParams(spec, prompt.params(), sample);
  RequestExtras extras;
  extras.tools_json = prompt.tools_json();
  extras.tool_choice_json = prompt.tool_choice_json();
  extras.json_schema = spec.json_schema();
  // The seed carries the sample: the index joins the key only for a
  // request without one (sample 0 of an unseeded job), where it is 0.
  return RequestKey(teacher, spec.model(), prompt.messages(), params,
                    params.has_seed() ? 0 : sample, extras);
}

void FillTaskRequest(const v1::JobSpec& spec, const v1::Prompt& prompt,
                     int sample, v1::LeasedTask* out) {
  out->set_model(spec.model());
  *out->mutable_messages() = prompt.messages();
  *out->mutable_params() = TaskParams(spec, prompt.params(), sample);
  out->set_tools_json(prompt.tools_json());
  out->set_tool_choice_json(prompt.tool_choice_json());
  out->set_json_schema(spec.json_schema());
  out->set_json_schema_name(spec.json_schema_name());
}

TeacherRequest ToTeacherRequest(const v1::LeasedTask& task) {
  TeacherRequest request;
  request.model = task.model();
  for (const v1::ChatMessage& m : task.messages()) {
    request.messages.push_back(ChatMessage{m.role(), m.content(),
                                           m.tool_calls_json(),
                                           m.tool_call_id()});
  }
  const v1::SamplingParams& params = task.params();
  request.params.max_tokens = params.max_tokens();
  if (params.has_temperature()) request.params.temperature = params.temperature();
  if (params.has_top_p()) request.params.top_p = params.top_p();
  if (params.has_seed()) request.params.seed = params.seed();
  request.params.stop.assign(params.stop().begin(), params.stop().end());
  request.params.top_logprobs = params.top_logprobs();
  request.tools_json = task.tools_json();
  request.tool_choice_json = task.tool_choice_json();
  request.json_schema = task.json_schema();
  request.json_schema_name = task.json_schema_name();
  return request;
}

}  // namespace distillery
