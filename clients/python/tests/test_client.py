"""The Python client against a real cluster on loopback (cluster.py):
submit rows with a template, watch, export as dicts and to files with
splits and a dataset card; errors as exceptions naming the row; the
coordinator's reflection service.
"""

from __future__ import annotations

import json
import os
import unittest

import yaml

import distillery
from cluster import Cluster

# Keys of OpenAI's fine-tuning chat format (its documentation's list).
OPENAI_LINE_KEYS = {"messages", "tools", "parallel_tool_calls"}
OPENAI_MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls",
                       "tool_call_id", "function_call"}


def maths_rows(n: int):
    return [{"id": f"q{i}", "question": f"What is {i} plus {i}?",
             "answer": str(2 * i), "level": i % 3} for i in range(n)]


def front_matter(text: str) -> dict:
    assert text.startswith("---\n"), text[:100]
    end = text.index("\n---\n", 4)
    return yaml.safe_load(text[4:end])


class ClientTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster()
        cls.client = distillery.Client(cls.cluster.address)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.cluster.close()

    def new_dir(self, name: str) -> str:
        path = os.path.join(self.cluster.dir, name)
        os.makedirs(path, exist_ok=True)
        return path

    def test_template_watch_export_splits_and_card(self):
        rows = maths_rows(40)
        # Row 0 brings its own budget: it reaches the teacher.
        rows[0]["max_tokens"] = 5
        rows[0]["temperature"] = 0.25
        job = self.client.submit(rows, teacher="sim", model="sim-reasoner",
                                 samples=2, template="Solve: {{ question }}",
                                 system="You are careful.")
        self.assertTrue(job.id.startswith("job-"), job)
        self.assertEqual(job.prompts, 40)
        self.assertEqual(job.tasks_total, 80)

        updates = list(self.client.watch(job))
        self.assertGreaterEqual(len(updates), 1)
        last = updates[-1]
        self.assertEqual(last.state, "completed", self.cluster.logs())
        self.assertEqual(last.percent, 100.0)
        self.assertEqual(last.tasks_done, 80)
        percents = [u.percent for u in updates]
        self.assertEqual(percents, sorted(percents))
        self.assertGreaterEqual(last.cost_usd, 0)

        raw = list(self.client.export(job, format="raw",
                                      include_duplicates=True,
                                      finish_reasons="any"))
        self.assertEqual(len(raw), 80)
        by_id = {}
        for r in raw:
            by_id.setdefault(r["prompt_id"], []).append(r)
            i = int(r["prompt_id"][1:])
            self.assertEqual(r["messages"][0],
                             {"role": "system", "content": "You are careful."})
            self.assertEqual(r["messages"][-1]["content"],
                             f"Solve: What is {i} plus {i}?")
            # Fields the template did not use are the prompt's metadata.
            self.assertEqual(r["metadata"],
                             {"answer": str(2 * i), "level": i % 3})
            if i == 0:
                self.assertEqual(r["params"]["max_tokens"], 5)
                self.assertEqual(r["params"]["temperature"], 0.25)
                self.assertLessEqual(r["usage"]["completion_tokens"], 5)
                self.assertEqual(r["finish_reason"], "length")
        self.assertEqual(sorted(by_id), sorted(r["id"] for r in rows))

        chat = list(self.client.export(job, format="chat"))
        self.assertGreater(len(chat), 0)
        for rec in chat:
            self.assertEqual(set(rec), {"messages", "metadata"})
            self.assertTrue(rec["messages"][-1]["reasoning_content"])

        openai = list(self.client.export(job, format="openai"))
        self.assertEqual(len(openai), len(chat))
        for rec in openai:
            self.assertLessEqual(set(rec), OPENAI_LINE_KEYS)
            for m in rec["messages"]:
                self.assertLessEqual(set(m), OPENAI_MESSAGE_KEYS, m)

        out = self.new_dir("hub")
        result = self.client.export_to(
            job, os.path.join(out, "train.jsonl"), format="openai",
            split={"train": 0.75, "test": 0.25}, card=True, license="mit",
            language="en", pretty_name="Sums")
        self.assertEqual(result.paths,
                         {"train": os.path.join(out, "train.train.jsonl"),
                          "test": os.path.join(out, "train.test.jsonl")})
        self.assertEqual(result.total, len(openai))
        self.assertEqual(sorted(os.listdir(out)),
                         ["README.md", "train.test.jsonl",
                          "train.train.jsonl"])
        seen = {}
        for split, path in result.paths.items():
            with open(path) as f:
                lines = [json.loads(line) for line in f]
            self.assertEqual(len(lines), result.records[split])
            for rec in lines:
                question = rec["messages"][-2]["content"]
                # Every sample of a prompt lands in the same split.
                self.assertEqual(seen.setdefault(question, split), split)
        self.assertGreater(result.records["test"], 0)
        self.assertGreater(result.records["train"], result.records["test"])

        with open(result.card) as f:
            card = f.read()
        meta = front_matter(card)
        self.assertEqual(meta["license"], "mit")
        self.assertEqual(meta["language"], ["en"])
        self.assertEqual(meta["pretty_name"], "Sums")
        self.assertEqual(meta["tags"], ["distillation", "synthetic"])
        self.assertEqual(meta["task_categories"], ["text-generation"])
        self.assertEqual(meta["size_categories"], ["n<1K"])
        # What datasets.load_dataset(DIR) reads: configs -> data_files,
        # paths relative to the card's folder.
        self.assertEqual(meta["configs"], [{
            "config_name": "default",
            "data_files": [{"split": "train", "path": "train.train.jsonl"},
                           {"split": "test", "path": "train.test.jsonl"}]}])
        for entry in meta["configs"][0]["data_files"]:
            self.assertTrue(os.path.isfile(os.path.join(out, entry["path"])))
        self.assertIn("| sim | sim-reasoner |", card)
        # q0's answers stopped at its 5 tokens ("length"): the default
        # finish-reason filter leaves them out.
        prompts = {rec["messages"][-2]["content"] for rec in openai}
        self.assertEqual(len(prompts), 39)
        self.assertIn("| Prompts | 39 |", card)
        self.assertIn("40 prompts", card)  # the job's
        self.assertIn(f"| Records | {len(openai)} |", card)
        self.assertIn(f"| Split `test` | {result.records['test']} |", card)
        self.assertIn("samples 2", card)
        self.assertIn(job.id, card)
        self.assertIn("terms of use apply", card)

    def test_a_bad_row_raises_naming_the_row_and_stores_nothing(self):
        before = {j.id for j in self.client.jobs()}
        rows = maths_rows(5)
        del rows[2]["question"]
        with self.assertRaises(distillery.RowError) as caught:
            self.client.submit(rows, teacher="sim", model="sim-reasoner",
                               template="Solve: {{ question }}")
        self.assertEqual(caught.exception.row, 3)
        self.assertIn('row 3: the template uses field "question"',
                      str(caught.exception))
        with self.assertRaises(distillery.RowError) as caught:
            self.client.submit([{"prompt": "fine"}, "not a dict"],
                               teacher="sim", model="sim-reasoner")
        self.assertEqual(caught.exception.row, 2)

        # A line the coordinator refuses: its message, with the line.
        with self.assertRaises(distillery.DistilleryError) as caught:
            self.client.submit([{"prompt": "fine"}, {"prompt": "ok"},
                                {"nothing": "here"}],
                               teacher="sim", model="sim-reasoner")
        self.assertEqual(caught.exception.code, "INVALID_ARGUMENT")
        self.assertEqual(caught.exception.line, 3)
        self.assertIn('no "prompt" or "messages"', caught.exception.message)
        with self.assertRaises(distillery.DistilleryError) as caught:
            self.client.submit([{"prompt": "x"}], teacher="nobody",
                               model="m")
        self.assertEqual(caught.exception.code, "INVALID_ARGUMENT")
        self.assertIn("nobody", caught.exception.message)
        self.assertEqual({j.id for j in self.client.jobs()}, before)

        with self.assertRaises(distillery.DistilleryError) as caught:
            self.client.job("job-999999")
        self.assertEqual(caught.exception.code, "NOT_FOUND")
        with self.assertRaises(distillery.DistilleryError) as caught:
            list(self.client.export("job-999999"))
        self.assertEqual(caught.exception.code, "NOT_FOUND")

    def test_rows_from_a_file_a_generator_and_export_options(self):
        path = os.path.join(self.new_dir("rows"), "prompts.jsonl")
        with open(path, "w") as f:
            for i in range(10):
                f.write(json.dumps({"id": f"p{i}", "prompt": f"Name {i}."})
                        + "\n")
        job = self.client.submit(path, teacher="sim", model="sim-small")
        self.assertEqual(job.prompts, 10)
        self.assertEqual(self.client.wait(job).state, "completed")
        self.assertEqual(self.client.job(job.id).proto.spec.source,
                         "prompts.jsonl")

        gen = ({"question": f"Count to {i}", "answer": str(i)}
               for i in range(1, 8))
        job2 = self.client.submit(gen, teacher="sim", model="sim-reasoner",
                                  template="{{question}}.")
        self.assertEqual(self.client.wait(job2).state, "completed")
        thinking = list(self.client.export(job2, format="chat",
                                           reasoning_key="thinking"))
        self.assertEqual(len(thinking), 7)
        for rec in thinking:
            self.assertIn("thinking", rec["messages"][-1])
        inline = list(self.client.export(job2, format="openai",
                                         reasoning="think-tags"))
        for rec in inline:
            self.assertTrue(rec["messages"][-1]["content"]
                            .startswith("<think>\n"))
        self.assertEqual(
            len(list(self.client.export(job2, format="raw",
                                        metadata={"answer": "3"}))), 1)
        both = list(self.client.export([job, job2], format="raw"))
        self.assertEqual(len(both), 17)

        with self.assertRaises(distillery.DistilleryError) as caught:
            list(self.client.export(job2, format="alpaca"))
        self.assertEqual(caught.exception.code, "INVALID_ARGUMENT")
        self.assertIn("unknown export format 'alpaca'",
                      caught.exception.message)
        with self.assertRaises(distillery.DistilleryError) as caught:
            list(self.client.export(job2, format="openai",
                                    reasoning="field"))
        self.assertIn("--format chat", caught.exception.message)
        with self.assertRaises(distillery.DistilleryError) as caught:
            list(self.client.export(job2, finish_reasons=["stopp"]))
        self.assertIn("no teacher reports 'stopp'", caught.exception.message)
        with self.assertRaises(TypeError):
            list(self.client.export(job2, colour="red"))

    def test_verify_logprobs_and_json_schema_options(self):
        rows = [{"id": f"m{i}", "prompt": f"What is {100 + i} + {i}?",
                 "metadata": {"answer": str(100 + 2 * i)}}
                for i in range(12)]
        job = self.client.submit(rows, teacher="sim", model="sim-small",
                                 verify="math", until_correct=1,
                                 max_samples=3, logprobs=3)
        done = self.client.wait(job)
        self.assertEqual(done.state, "completed")
        self.assertEqual(done.proto.spec.verify, "math")
        self.assertEqual(done.proto.spec.params.top_logprobs, 3)
        verified = list(self.client.export(job, format="raw",
                                           verified_only=True))
        self.assertEqual(len(verified), done.proto.counters.verified_answers)
        for rec in verified:
            self.assertIs(rec["verified"], True)
        for rec in self.client.export(job, format="logprobs",
                                      finish_reasons="any",
                                      include_duplicates=True):
            self.assertEqual("".join(rec["tokens"]),
                             rec["messages"][-1]["content"])
            self.assertTrue(all(len(t) == 3 for t in rec["top_logprobs"]))
        hard = list(self.client.export(job, format="raw", max_pass_rate=0.0,
                                       finish_reasons="any",
                                       include_duplicates=True))
        for rec in hard:
            self.assertIsNot(rec["verified"], True)

        schema = {"type": "object", "required": ["name"],
                  "properties": {"name": {"type": "string"}}}
        job2 = self.client.submit([{"prompt": f"Name {i}"} for i in range(5)],
                                  teacher="sim", model="sim-small",
                                  json_schema=schema)
        self.assertEqual(self.client.wait(job2).state, "completed")
        for rec in self.client.export(job2):
            self.assertIsInstance(
                json.loads(rec["messages"][-1]["content"])["name"], str)

    def test_an_unreachable_coordinator_is_a_clear_error(self):
        with self.assertRaises(distillery.DistilleryError) as caught:
            distillery.Client("127.0.0.1:1", connect_timeout=0.5)
        self.assertEqual(caught.exception.code, "UNAVAILABLE")
        self.assertIn("127.0.0.1:1", caught.exception.message)

    def test_reflection_lists_and_describes_the_services(self):
        import grpc
        from google.protobuf import descriptor_pb2
        import reflection_pb2
        import reflection_pb2_grpc

        with grpc.insecure_channel(self.cluster.address) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            responses = list(stub.ServerReflectionInfo(iter([
                reflection_pb2.ServerReflectionRequest(list_services=""),
                reflection_pb2.ServerReflectionRequest(
                    file_containing_symbol="distillery.v1.ClientService"),
            ])))
        services = {s.name for s in
                    responses[0].list_services_response.service}
        self.assertIn("distillery.v1.ClientService", services)
        self.assertIn("distillery.v1.WorkerService", services)
        self.assertIn("grpc.health.v1.Health", services)
        methods = set()
        for raw in responses[1].file_descriptor_response.file_descriptor_proto:
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
            for service in fd.service:
                if service.name == "ClientService":
                    methods = {m.name for m in service.method}
        self.assertTrue({"Submit", "WatchJob", "Export"} <= methods, methods)


if __name__ == "__main__":
    unittest.main()
