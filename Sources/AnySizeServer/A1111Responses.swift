import AnySize
import Foundation

/// The JSON bodies of A1111's answers (TextToImageResponse, ProgressResponse, the list endpoints).
enum A1111Responses {
    /// `{"images": [...], "parameters": {...}, "info": "<json>"}` of a finished txt2img/img2img job.
    /// `info.anysize_job_id` names the stored job (`GET /anysize/v1/jobs/{id}`).
    static func generation(_ job: GenerationJob, _ output: GenerationOutput, jobID: String?) -> [String: Any] {
        let o = output.options
        var parameters: [String: Any] = [
            "prompt": o.prompt, "negative_prompt": o.negativePrompt, "seed": job.requestedSeed, "subseed": job.subseed,
            "sampler_name": job.samplerName, "scheduler": job.schedulerName, "batch_size": o.batchSize,
            "n_iter": job.iterations, "steps": o.steps, "cfg_scale": o.cfgScale, "width": o.width, "height": o.height,
            "send_images": job.sendImages, "save_images": job.saveImages,
            "override_settings": ["CLIP_stop_at_last_layers": o.clipSkip, "sd_model_checkpoint": output.modelName],
            "anysize_attention": o.attention.rawValue, "anysize_prompt_syntax": o.promptSyntax.rawValue,
            "anysize_local_edge": o.localEdge, "anysize_compose": o.composition.mode.rawValue,
            "anysize_hires_strength": o.composition.hiresStrength, "anysize_redilate_until": o.composition.redilateUntil,
            "anysize_deep_shrink_end": o.composition.deepShrinkEnd,
        ]
        if job.kind == .img2img {
            parameters["denoising_strength"] = o.strength
            parameters["resize_mode"] = 0
            parameters["init_images"] = NSNull()
        }
        let seeds = output.seeds.map { Int64(bitPattern: $0) }
        let count = output.pngs.count
        let info: [String: Any] = [
            "prompt": o.prompt, "all_prompts": Array(repeating: o.prompt, count: count),
            "negative_prompt": o.negativePrompt, "all_negative_prompts": Array(repeating: o.negativePrompt, count: count),
            "seed": Int64(bitPattern: o.seed), "all_seeds": seeds, "subseed": job.subseed,
            "all_subseeds": Array(repeating: job.subseed, count: count), "subseed_strength": 0,
            "width": o.width, "height": o.height, "sampler_name": job.samplerName, "scheduler": job.schedulerName,
            "cfg_scale": o.cfgScale, "steps": o.steps, "batch_size": o.batchSize, "restore_faces": false,
            "face_restoration_model": NSNull(), "sd_model_name": output.modelName, "sd_model_hash": output.modelHash ?? NSNull(),
            "sd_vae_name": NSNull(), "sd_vae_hash": NSNull(), "seed_resize_from_w": -1, "seed_resize_from_h": -1,
            "denoising_strength": job.kind == .img2img ? o.strength as Any : NSNull(),
            "extra_generation_params": ["Attention": output.attention],
            "index_of_first_image": 0, "infotexts": output.infotexts, "styles": [String](),
            "job_timestamp": output.jobTimestamp, "clip_skip": o.clipSkip, "is_using_inpainting_conditioning": false,
            "version": "anysize \(AnySizeVersion.string)", "anysize_interrupted": output.interrupted,
            "anysize_notes": job.notes, "anysize_job_id": jobID ?? NSNull(),
        ]
        return [
            "images": job.sendImages ? output.pngs.map { Data($0).base64EncodedString() } : [String](),
            "parameters": parameters,
            "info": String(decoding: (try? JSONSerialization.data(withJSONObject: info, options: [.sortedKeys])) ?? Data("{}".utf8), as: UTF8.self),
        ]
    }

    /// ProgressResponse: progress in [0, 1], eta_relative in seconds, the state, and the live preview.
    /// A1111's formula: progress = (job_no + step / steps) / job_count; eta = elapsed / progress - elapsed.
    static func progress(_ s: ProgressSnapshot, preview: (any PixelwiseLatentDecoder)?, includeImage: Bool) -> [String: Any] {
        var progress = 0.0, eta = 0.0
        if s.busy && s.jobCount > 0 {
            progress = Double(s.jobNumber) / Double(s.jobCount)
            if s.steps > 0 { progress += Double(s.step) / Double(s.steps) / Double(s.jobCount) }
            let elapsed = Date().timeIntervalSince(s.started)
            if progress > 0 { eta = max(0, elapsed / progress - elapsed) }
        }
        var image: Any = NSNull()
        if includeImage, s.busy, let latents = s.latents, let preview,
           let png = try? PNGWriter.encode(preview.image(fromLatents: latents, index: 0)) {
            image = Data(png).base64EncodedString()
        }
        let state: [String: Any] = [
            "skipped": s.skipped, "interrupted": s.interrupted, "stopping_generation": false, "job": s.jobName,
            "job_count": s.busy ? s.jobCount : 0, "job_timestamp": s.jobTimestamp, "job_no": s.jobNumber,
            "sampling_step": s.step, "sampling_steps": s.steps, "anysize_queued": s.waiting,
        ]
        return ["progress": min(1, progress), "eta_relative": eta, "state": state, "current_image": image,
                "textinfo": s.busy ? "\(s.jobName) \(s.jobNumber + 1)/\(s.jobCount), step \(s.step)/\(s.steps); \(s.waiting) waiting" : NSNull()]
    }

    static var samplers: [[String: Any]] {
        A1111Names.samplers.map { ["name": $0.name, "aliases": $0.aliases + [$0.kind.rawValue], "options": [String: String]()] }
    }

    static var schedulers: [[String: Any]] {
        A1111Names.schedulers.map {
            ["name": $0.name, "label": $0.label, "aliases": NSNull(), "default_rho": $0.name == "karras" ? 7.0 : -1.0,
             "need_inner_model": false]
        }
    }
}
